//! The server side of AUTH (RFC 4954) for the ODMR server: SCRAM-SHA-256 (RFC 5802/7677),
//! CRAM-MD5 (RFC 2195), PLAIN (RFC 4616) and LOGIN, over the same primitives as the client
//! side in `smtp/sasl.rs` (ring's PBKDF2/HMAC-SHA-256, the hmac and md-5 crates). The existing
//! SASL crates were a poor fit: `scram` 0.6 has not changed since 2021 (ring 0.16), `rsasl` is a
//! framework of its own for what is four short exchanges here.
//!
//! Each mechanism is a small state machine: [`Exchange::step`] takes the client's (decoded)
//! message and returns the next challenge, or the verdict. Passwords are compared in constant
//! time (ring's `verify`), and a failed login says nothing about which part was wrong.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use ring::rand::SecureRandom;
use ring::{digest, pbkdf2};

/// SCRAM iteration count (RFC 7677's minimum).
const ITERATIONS: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    ScramSha256,
    CramMd5,
    Plain,
    Login,
}

impl Mechanism {
    pub fn parse(name: &str) -> Option<Mechanism> {
        match name.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-256" => Some(Mechanism::ScramSha256),
            "CRAM-MD5" => Some(Mechanism::CramMd5),
            "PLAIN" => Some(Mechanism::Plain),
            "LOGIN" => Some(Mechanism::Login),
            _ => None,
        }
    }

    /// PLAIN and LOGIN send the password itself: only over TLS.
    pub fn needs_tls(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::Login)
    }

    /// The EHLO `AUTH` keyword's list.
    pub fn offered(tls: bool) -> &'static str {
        if tls {
            "SCRAM-SHA-256 CRAM-MD5 PLAIN LOGIN"
        } else {
            "SCRAM-SHA-256 CRAM-MD5"
        }
    }
}

/// Looks up a user's password (the keyring entry `USERNAME@backup`).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

#[derive(Debug)]
enum State {
    ScramStart,
    ScramFinal {
        user: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        salt: [u8; 16],
    },
    /// The server-final message is out; the client's (empty) answer ends the login.
    ScramDone {
        user: String,
    },
    CramStart,
    CramAnswer {
        challenge: String,
    },
    PlainStart,
    LoginUser,
    LoginPassword {
        user: String,
    },
    Done,
}

/// One AUTH exchange.
#[derive(Debug)]
pub struct Exchange {
    state: State,
    hostname: String,
}

/// How an exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Logged in as this user.
    Success {
        user: String,
    },
    Failure,
}

impl Exchange {
    pub fn new(mechanism: Mechanism, hostname: &str) -> Exchange {
        let state = match mechanism {
            Mechanism::ScramSha256 => State::ScramStart,
            Mechanism::CramMd5 => State::CramStart,
            Mechanism::Plain => State::PlainStart,
            Mechanism::Login => State::LoginUser,
        };
        Exchange {
            state,
            hostname: hostname.to_string(),
        }
    }

    /// The first challenge when the client gave no initial response (CRAM-MD5 always starts
    /// with one; LOGIN asks for the user name).
    pub fn opening(&mut self) -> Option<Vec<u8>> {
        match &self.state {
            State::CramStart => {
                let challenge = format!(
                    "<{}.{}@{}>",
                    random_hex(8)?,
                    crate::outbound::spool::unix_now(),
                    self.hostname
                );
                let bytes = challenge.clone().into_bytes();
                self.state = State::CramAnswer { challenge };
                Some(bytes)
            }
            State::LoginUser => Some(b"Username:".to_vec()),
            _ => Some(Vec::new()),
        }
    }

    /// Feeds one client message (already base64-decoded); `lookup` gives a user's password.
    /// `Ok(challenge)`: send it as `334 <base64>` and feed the answer; `Err`: the end.
    pub fn step(&mut self, message: &[u8], lookup: Lookup<'_>) -> Result<Option<Vec<u8>>, Verdict> {
        let text = String::from_utf8_lossy(message).into_owned();
        match std::mem::replace(&mut self.state, State::Done) {
            State::PlainStart => {
                let mut parts = message.split(|b| *b == 0);
                let (_authz, user, pass) = (parts.next(), parts.next(), parts.next());
                let (Some(user), Some(pass)) = (user, pass) else {
                    return Err(Verdict::Failure);
                };
                let user = String::from_utf8_lossy(user).into_owned();
                Err(check_password(&user, pass, lookup))
            }
            State::LoginUser => {
                self.state = State::LoginPassword { user: text };
                Ok(Some(b"Password:".to_vec()))
            }
            State::LoginPassword { user } => Err(check_password(&user, message, lookup)),
            State::CramAnswer { challenge } => {
                let Some((user, hex)) = text.rsplit_once(' ') else {
                    return Err(Verdict::Failure);
                };
                let Some(password) = lookup(user) else {
                    return Err(Verdict::Failure);
                };
                let Ok(mut mac) = <Hmac<md5::Md5> as KeyInit>::new_from_slice(password.as_bytes())
                else {
                    return Err(Verdict::Failure);
                };
                mac.update(challenge.as_bytes());
                let expected: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                if constant_eq(expected.as_bytes(), hex.to_ascii_lowercase().as_bytes()) {
                    Err(success(user))
                } else {
                    Err(Verdict::Failure)
                }
            }
            State::ScramStart => self.scram_first(&text),
            State::ScramFinal {
                user,
                client_first_bare,
                server_first,
                nonce,
                salt,
            } => {
                let Some(password) = lookup(&user) else {
                    return Err(Verdict::Failure);
                };
                // SCRAM's server-final message goes out as a 334 (RFC 4954 §4), so that the
                // client checks it before the 235.
                let reply = scram_final(
                    &text,
                    &password,
                    &client_first_bare,
                    &server_first,
                    &nonce,
                    &salt,
                )?;
                self.state = State::ScramDone { user };
                Ok(Some(reply))
            }
            State::ScramDone { user } => Err(success(&user)),
            State::CramStart | State::Done => Err(Verdict::Failure),
        }
    }

    fn scram_first(&mut self, text: &str) -> Result<Option<Vec<u8>>, Verdict> {
        // gs2 header: no channel binding ("n,," or "y,,"), no authzid.
        let Some(bare) = text
            .strip_prefix("n,,")
            .or_else(|| text.strip_prefix("y,,"))
        else {
            return Err(Verdict::Failure);
        };
        let mut user = None;
        let mut cnonce = None;
        for attr in bare.split(',') {
            match attr.split_once('=') {
                Some(("n", v)) => user = Some(v.replace("=2C", ",").replace("=3D", "=")),
                Some(("r", v)) => cnonce = Some(v.to_string()),
                Some(("m", _)) => return Err(Verdict::Failure),
                _ => {}
            }
        }
        let (Some(user), Some(cnonce)) = (user, cnonce) else {
            return Err(Verdict::Failure);
        };
        let (Some(snonce), Some(salt)) = (random_hex(18), random_bytes::<16>()) else {
            return Err(Verdict::Failure);
        };
        let nonce = format!("{cnonce}{snonce}");
        let server_first = format!("r={nonce},s={},i={ITERATIONS}", BASE64.encode(salt));
        self.state = State::ScramFinal {
            user,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
            salt,
        };
        Ok(Some(server_first.into_bytes()))
    }
}

fn success(user: &str) -> Verdict {
    Verdict::Success {
        user: user.to_string(),
    }
}

fn check_password(user: &str, given: &[u8], lookup: Lookup<'_>) -> Verdict {
    match lookup(user) {
        Some(p) if constant_eq(p.as_bytes(), given) => success(user),
        _ => Verdict::Failure,
    }
}

fn scram_final(
    text: &str,
    password: &str,
    client_first_bare: &str,
    server_first: &str,
    nonce: &str,
    salt: &[u8],
) -> Result<Vec<u8>, Verdict> {
    let Some((without_proof, proof_b64)) = text.rsplit_once(",p=") else {
        return Err(Verdict::Failure);
    };
    let nonce_ok = without_proof
        .split(',')
        .any(|a| a.strip_prefix("r=") == Some(nonce));
    let Ok(proof) = BASE64.decode(proof_b64) else {
        return Err(Verdict::Failure);
    };
    if !nonce_ok || proof.len() != 32 {
        return Err(Verdict::Failure);
    }
    let Some(iterations) = std::num::NonZeroU32::new(ITERATIONS) else {
        return Err(Verdict::Failure);
    };
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password.as_bytes(),
        &mut salted,
    );
    let client_key = hmac_sha256(&salted, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, &client_key);
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let client_signature = hmac_sha256(stored_key.as_ref(), auth_message.as_bytes());
    let recovered_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let recovered_stored = digest::digest(&digest::SHA256, &recovered_key);
    if !constant_eq(recovered_stored.as_ref(), stored_key.as_ref()) {
        return Err(Verdict::Failure);
    }
    let server_key = hmac_sha256(&salted, b"Server Key");
    let server_signature = hmac_sha256(&server_key, auth_message.as_bytes());
    Ok(format!("v={}", BASE64.encode(&server_signature)).into_bytes())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_bytes<const N: usize>() -> Option<[u8; N]> {
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut out).ok()?;
    Some(out)
}

fn random_hex(n: usize) -> Option<String> {
    let mut raw = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut raw).ok()?;
    Some(raw.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::smtp::sasl as client;

    fn lookup(user: &str) -> Option<String> {
        (user == "neighbour").then(|| "pencil pass".to_string())
    }

    fn b64d(s: &str) -> Vec<u8> {
        BASE64.decode(s).unwrap()
    }

    #[test]
    fn scram_with_our_own_client_logs_in_and_proves_the_server() {
        let mut c = client::Scram::new("neighbour", "pencil pass").unwrap();
        let mut s = Exchange::new(Mechanism::ScramSha256, "gw.test");

        let first = s.step(&b64d(&c.client_first()), &lookup).unwrap().unwrap();
        let answer = c.client_final(&BASE64.encode(&first)).unwrap();
        let last = s.step(&b64d(&answer), &lookup).unwrap().unwrap();

        assert!(c.verify_server_final(&BASE64.encode(&last)).is_ok());
        assert_eq!(
            s.step(b"", &lookup),
            Err(Verdict::Success {
                user: "neighbour".into()
            })
        );
    }

    #[test]
    fn scram_with_a_wrong_password_fails() {
        let mut c = client::Scram::new("neighbour", "wrong").unwrap();
        let mut s = Exchange::new(Mechanism::ScramSha256, "gw.test");

        let first = s.step(&b64d(&c.client_first()), &lookup).unwrap().unwrap();
        let answer = c.client_final(&BASE64.encode(&first)).unwrap();

        assert_eq!(s.step(&b64d(&answer), &lookup), Err(Verdict::Failure));
    }

    #[test]
    fn cram_md5_with_our_own_client() {
        let mut s = Exchange::new(Mechanism::CramMd5, "gw.test");
        let challenge = s.opening().unwrap();

        let good =
            client::cram_md5_response("neighbour", "pencil pass", &BASE64.encode(&challenge))
                .unwrap();

        assert!(matches!(
            s.step(&b64d(&good), &lookup),
            Err(Verdict::Success { .. })
        ));
        let mut again = Exchange::new(Mechanism::CramMd5, "gw.test");
        let challenge = again.opening().unwrap();
        let bad =
            client::cram_md5_response("neighbour", "nope", &BASE64.encode(&challenge)).unwrap();
        assert_eq!(again.step(&b64d(&bad), &lookup), Err(Verdict::Failure));
    }

    #[test]
    fn plain_and_login() {
        let mut p = Exchange::new(Mechanism::Plain, "gw.test");
        assert!(matches!(
            p.step(b"\0neighbour\0pencil pass", &lookup),
            Err(Verdict::Success { .. })
        ));
        let mut l = Exchange::new(Mechanism::Login, "gw.test");
        assert_eq!(l.opening().unwrap(), b"Username:");
        assert_eq!(
            l.step(b"neighbour", &lookup).unwrap().unwrap(),
            b"Password:"
        );
        assert_eq!(l.step(b"pencil", &lookup), Err(Verdict::Failure));
    }
}
