//! Server-side SASL arithmetic: CRAM-MD5 (RFC 2195) and SCRAM-SHA-256 (RFC 5802, RFC 7677).
//! The exchange itself (334 challenges, `*`) lives in server.rs.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac as rhmac, pbkdf2};

pub(super) const SCRAM_ITERATIONS: u32 = 4096;

pub(super) fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub(super) fn unb64(text: &str) -> Option<Vec<u8>> {
    B64.decode(text.trim()).ok()
}

pub(super) fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    // The system RNG failing is not something a test peer can recover from sensibly; an
    // all-zero nonce still lets the exchange proceed.
    let _ = SystemRandom::new().fill(&mut out);
    out
}

/// Lower-case hex HMAC-MD5 of the challenge keyed with the password (RFC 2195 §2).
pub(super) fn cram_md5_hex(password: &str, challenge: &str) -> String {
    let mut mac = hmac::Hmac::<md5::Md5>::new_from_slice(password.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(challenge.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum ScramError {
    /// Not parseable as a SCRAM message; SMTP 501.
    Malformed(&'static str),
    /// Unknown user or wrong proof; SMTP 535.
    BadCredentials,
}

/// The server's side of one SCRAM-SHA-256 exchange.
pub(super) struct ScramServer {
    user: String,
    password: Option<String>,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    salt: Vec<u8>,
}

/// RFC 5802 §5.1 saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn decode_saslname(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = name;
    while let Some(pos) = rest.find('=') {
        out.push_str(&rest[..pos]);
        let escape = rest.get(pos..pos + 3)?;
        match escape {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return None,
        }
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    (!out.is_empty()).then_some(out)
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = rhmac::Key::new(rhmac::HMAC_SHA256, key);
    rhmac::sign(&key, data).as_ref().to_vec()
}

fn salted_password(password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; digest::SHA256_OUTPUT_LEN];
    let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password.as_bytes(),
        &mut out,
    );
    out
}

impl ScramServer {
    /// Parses client-first-message and builds server-first-message. `password_of` looks the
    /// user up; an unknown user still gets a plausible challenge and fails at the proof.
    pub(super) fn start(
        client_first: &str,
        password_of: impl Fn(&str) -> Option<String>,
    ) -> Result<(ScramServer, String), ScramError> {
        let nonce = b64(&random_bytes(18));
        Self::start_with(client_first, password_of, &nonce, random_bytes(16))
    }

    fn start_with(
        client_first: &str,
        password_of: impl Fn(&str) -> Option<String>,
        server_nonce: &str,
        salt: Vec<u8>,
    ) -> Result<(ScramServer, String), ScramError> {
        // gs2-header = gs2-cbind-flag "," [ authzid ] ","
        let mut parts = client_first.splitn(3, ',');
        let cbind = parts.next().ok_or(ScramError::Malformed("empty message"))?;
        let authzid = parts.next().ok_or(ScramError::Malformed("no gs2 header"))?;
        let bare = parts
            .next()
            .ok_or(ScramError::Malformed("no client-first-message-bare"))?;
        match cbind {
            "n" | "y" => {}
            // We never offer SCRAM-SHA-256-PLUS, so channel binding cannot be negotiated.
            c if c.starts_with("p=") => {
                return Err(ScramError::Malformed("channel binding not supported"));
            }
            _ => return Err(ScramError::Malformed("bad gs2-cbind-flag")),
        }
        let authzid = match authzid {
            "" => None,
            a => Some(
                a.strip_prefix("a=")
                    .and_then(decode_saslname)
                    .ok_or(ScramError::Malformed("bad authzid"))?,
            ),
        };
        let mut attrs = bare.split(',');
        let user = attrs
            .next()
            .and_then(|a| a.strip_prefix("n="))
            .and_then(decode_saslname)
            .ok_or(ScramError::Malformed("expected n=<user>"))?;
        let client_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','))
            .ok_or(ScramError::Malformed("expected r=<nonce>"))?;
        if attrs.any(|a| a.starts_with("m=")) {
            return Err(ScramError::Malformed("mandatory extension not supported"));
        }
        let mut password = password_of(&user);
        if authzid.as_deref().is_some_and(|a| a != user) {
            password = None;
        }
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={},i={SCRAM_ITERATIONS}", b64(&salt));
        let gs2_header = format!("{cbind},{},", parts_authzid(client_first));
        Ok((
            ScramServer {
                user,
                password,
                gs2_header,
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
                nonce,
                salt,
            },
            server_first,
        ))
    }

    pub(super) fn user(&self) -> &str {
        &self.user
    }

    /// Checks client-final-message; on success returns server-final-message (`v=...`).
    pub(super) fn finish(&self, client_final: &str) -> Result<String, ScramError> {
        let (without_proof, proof) = client_final
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("expected p=<proof>"))?;
        let mut attrs = without_proof.split(',');
        let cbind = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("expected c=<channel binding>"))?;
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("expected r=<nonce>"))?;
        if cbind != b64(self.gs2_header.as_bytes()) {
            return Err(ScramError::Malformed(
                "channel binding does not match the gs2 header",
            ));
        }
        if nonce != self.nonce {
            return Err(ScramError::Malformed("nonce does not match"));
        }
        let proof = unb64(proof).ok_or(ScramError::Malformed("proof is not base64"))?;
        let Some(password) = &self.password else {
            return Err(ScramError::BadCredentials);
        };
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let salted = salted_password(password, &self.salt, SCRAM_ITERATIONS);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, &client_key);
        let client_signature = hmac_sha256(stored_key.as_ref(), auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::BadCredentials);
        }
        let recovered: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let recovered_stored = digest::digest(&digest::SHA256, &recovered);
        if !constant_time_eq(recovered_stored.as_ref(), stored_key.as_ref()) {
            return Err(ScramError::BadCredentials);
        }
        let server_key = hmac_sha256(&salted, b"Server Key");
        let server_signature = hmac_sha256(&server_key, auth_message.as_bytes());
        Ok(format!("v={}", b64(&server_signature)))
    }
}

/// The authzid field of the gs2 header exactly as the client sent it.
fn parts_authzid(client_first: &str) -> &str {
    client_first.split(',').nth(1).unwrap_or("")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cram_md5_matches_rfc_2195_example() {
        let challenge = "<1896.697170952@postoffice.reston.mci.net>";

        let digest = cram_md5_hex("tanstaaftanstaaf", challenge);

        assert_eq!(digest, "b913a602c7eda7a495b4e6e7334d3890");
    }

    #[test]
    fn saslname_decodes_escapes_and_rejects_others() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(decode_saslname("a=2"), None);
        assert_eq!(decode_saslname("a=41"), None);
    }

    #[test]
    fn scram_matches_the_rfc_7677_example() {
        let salt = unb64("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let (server, server_first) = ScramServer::start_with(
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            |u| (u == "user").then(|| "pencil".to_string()),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            salt,
        )
        .unwrap();

        let server_final = server.finish(
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        );

        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        assert_eq!(
            server_final.as_deref(),
            Ok("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        );
    }

    #[test]
    fn scram_rejects_channel_binding_it_never_offered() {
        let result = ScramServer::start("p=tls-unique,,n=user,r=abc", |_| None);

        assert!(matches!(result, Err(ScramError::Malformed(_))));
    }
}
