#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The dequeue client over an in-memory stream: what its errors may and may not say.

use std::time::Duration;

use postern_engine::smtp::client::{ClientOptions, SmtpClient};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn options() -> ClientOptions {
    ClientOptions {
        host: "isp.test".into(),
        port: 25,
        timeout: Duration::from_secs(5),
        helo_name: "office.test".into(),
        trust: Default::default(),
        connect_addr: None,
    }
}

#[tokio::test]
async fn a_failing_write_during_auth_login_never_shows_the_password() {
    let (client_side, server_side) = tokio::io::duplex(64);
    // A server that asks for the password, then goes away before it is sent.
    let server = tokio::spawn(async move {
        let (read, mut write) = tokio::io::split(server_side);
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 isp.test ESMTP\r\n").await.unwrap();
        lines.next_line().await.unwrap(); // EHLO
        write
            .write_all(b"250-isp.test\r\n250 AUTH LOGIN\r\n")
            .await
            .unwrap();
        lines.next_line().await.unwrap(); // AUTH LOGIN
        write.write_all(b"334 VXNlcm5hbWU6\r\n").await.unwrap();
        lines.next_line().await.unwrap(); // the user name
        write.write_all(b"334 UGFzc3dvcmQ6\r\n").await.unwrap();
    });
    let mut client = SmtpClient::over_stream(client_side, &options())
        .await
        .unwrap();
    client.hello().await.unwrap();

    let password = "s3cret-Pa55word-that-is-long-enough-to-fill-the-pipe".repeat(4);
    let err = client
        .authenticate("office", &password, true)
        .await
        .unwrap_err()
        .to_string();
    server.await.unwrap();

    let encoded = base64_of(&password);
    assert!(!err.contains(&password), "{err}");
    assert!(!err.contains(&encoded[..16]), "{err}");
    assert!(err.contains("AUTH LOGIN"), "{err}");
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(start_paused = true)]
async fn a_reply_that_drips_in_is_bounded_as_a_whole() {
    let (client_side, mut server_side) = tokio::io::duplex(64);
    tokio::spawn(async move {
        for b in b"220 isp.test ESMTP a greeting one byte a second\r\n" {
            if server_side.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let err = SmtpClient::over_stream(client_side, &options())
        .await
        .unwrap_err()
        .to_string();
    // Each byte came quickly; the reply as a whole did not.
    assert!(err.contains("did not answer within 5 s"), "{err}");
}
