//! The client side of the SASL mechanisms Postern logs in with (RFC 4954 AUTH):
//! SCRAM-SHA-256 (RFC 5802/7677: the password never leaves this machine, and the server proves it
//! knows it too), CRAM-MD5 (RFC 2195), PLAIN (RFC 4616) and LOGIN.
//!
//! PLAIN and LOGIN send the password itself, so [`choose`] offers them only over TLS (or when the
//! admin allowed plaintext logins explicitly).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use ring::{digest, pbkdf2, rand::SecureRandom};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    ScramSha256,
    CramMd5,
    Plain,
    Login,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// The strongest mechanism both sides support. `cleartext_ok`: the password may be sent as is
/// (the session is encrypted, or the admin allowed it).
pub fn choose(offered: &[String], cleartext_ok: bool) -> Option<Mechanism> {
    let has = |m: &str| offered.iter().any(|o| o.eq_ignore_ascii_case(m));
    [
        (Mechanism::ScramSha256, true),
        (Mechanism::CramMd5, true),
        (Mechanism::Plain, cleartext_ok),
        (Mechanism::Login, cleartext_ok),
    ]
    .into_iter()
    .find(|(m, allowed)| *allowed && has(m.name()))
    .map(|(m, _)| m)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SaslError {
    #[error("the server's challenge is not valid base64")]
    BadBase64,
    #[error("the server's SCRAM message is malformed: {0}")]
    BadScram(String),
    #[error(
        "the server did not prove that it knows the password (SCRAM server signature mismatch)"
    )]
    ServerSignature,
    #[error("the operating system gave no random bytes for the SCRAM nonce")]
    NoRandomness,
}

pub fn plain_initial(username: &str, password: &str) -> String {
    BASE64.encode(format!("\0{username}\0{password}"))
}

pub fn encode(text: &[u8]) -> String {
    BASE64.encode(text)
}

/// CRAM-MD5: `username hex(HMAC-MD5(password, challenge))`, base64-encoded.
pub fn cram_md5_response(
    username: &str,
    password: &str,
    challenge_b64: &str,
) -> Result<String, SaslError> {
    let challenge = BASE64
        .decode(challenge_b64.trim())
        .map_err(|_| SaslError::BadBase64)?;
    let mut mac = <Hmac<md5::Md5> as KeyInit>::new_from_slice(password.as_bytes())
        .map_err(|_| SaslError::BadBase64)?;
    mac.update(&challenge);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(BASE64.encode(format!("{username} {hex}")))
}

/// One SCRAM-SHA-256 exchange, without channel binding.
#[derive(Debug)]
pub struct Scram {
    password: String,
    client_first_bare: String,
    nonce: String,
    auth_message: Option<String>,
    salted_password: Option<[u8; 32]>,
}

/// Upper bound on the server's iteration count, so a hostile server cannot make us spin.
const MAX_ITERATIONS: u32 = 1_000_000;

impl Scram {
    /// Fails only when the OS has no randomness to give (a predictable nonce would let an
    /// attacker replay the exchange, so there is no fallback).
    pub fn new(username: &str, password: &str) -> Result<Scram, SaslError> {
        let mut raw = [0u8; 18];
        ring::rand::SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| SaslError::NoRandomness)?;
        let nonce = BASE64.encode(raw);
        let name = username.replace('=', "=3D").replace(',', "=2C");
        Ok(Scram {
            password: password.to_string(),
            client_first_bare: format!("n={name},r={nonce}"),
            nonce,
            auth_message: None,
            salted_password: None,
        })
    }

    /// The initial response (base64) for `AUTH SCRAM-SHA-256 <initial>`.
    pub fn client_first(&self) -> String {
        BASE64.encode(format!("n,,{}", self.client_first_bare))
    }

    /// Answers the server-first-message (base64) with the client-final-message (base64).
    pub fn client_final(&mut self, server_first_b64: &str) -> Result<String, SaslError> {
        let server_first = String::from_utf8(
            BASE64
                .decode(server_first_b64.trim())
                .map_err(|_| SaslError::BadBase64)?,
        )
        .map_err(|_| SaslError::BadScram("not UTF-8".into()))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in server_first.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v.to_string()),
                Some(("s", v)) => salt = Some(BASE64.decode(v).map_err(|_| SaslError::BadBase64)?),
                Some(("i", v)) => iterations = v.parse::<u32>().ok(),
                Some(("m", _)) => {
                    return Err(SaslError::BadScram(
                        "unsupported mandatory extension".into(),
                    ));
                }
                _ => {}
            }
        }
        let nonce = nonce.ok_or_else(|| SaslError::BadScram("no nonce".into()))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(SaslError::BadScram(
                "the server's nonce does not extend ours".into(),
            ));
        }
        let salt = salt.ok_or_else(|| SaslError::BadScram("no salt".into()))?;
        let iterations = iterations
            .filter(|i| (1..=MAX_ITERATIONS).contains(i))
            .ok_or_else(|| SaslError::BadScram("missing or unreasonable iteration count".into()))?;

        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(iterations)
                .ok_or_else(|| SaslError::BadScram("zero iterations".into()))?,
            &salt,
            self.password.as_bytes(),
            &mut salted,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac_sha256(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        self.auth_message = Some(auth_message);
        self.salted_password = Some(salted);
        Ok(BASE64.encode(format!("{without_proof},p={}", BASE64.encode(proof))))
    }

    /// Checks the server-final-message (base64): the server's signature proves it knows the
    /// password too.
    pub fn verify_server_final(&self, server_final_b64: &str) -> Result<(), SaslError> {
        let text = String::from_utf8(
            BASE64
                .decode(server_final_b64.trim())
                .map_err(|_| SaslError::BadBase64)?,
        )
        .map_err(|_| SaslError::BadScram("not UTF-8".into()))?;
        if let Some(err) = text.strip_prefix("e=") {
            return Err(SaslError::BadScram(format!("the server reports {err}")));
        }
        let given = text
            .strip_prefix("v=")
            .and_then(|v| BASE64.decode(v.split(',').next().unwrap_or(v)).ok())
            .ok_or(SaslError::ServerSignature)?;
        let (Some(salted), Some(auth_message)) = (&self.salted_password, &self.auth_message) else {
            return Err(SaslError::ServerSignature);
        };
        let server_key = hmac_sha256(salted, b"Server Key");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &server_key);
        if ring::hmac::verify(&key, auth_message.as_bytes(), &given).is_ok() {
            Ok(())
        } else {
            Err(SaslError::ServerSignature)
        }
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strongest_mechanism_wins_and_cleartext_needs_permission() {
        let offered: Vec<String> = ["PLAIN", "LOGIN", "CRAM-MD5"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(choose(&offered, true), Some(Mechanism::CramMd5));
        let offered: Vec<String> = ["PLAIN", "LOGIN"].iter().map(|s| s.to_string()).collect();
        assert_eq!(choose(&offered, false), None);
        assert_eq!(choose(&offered, true), Some(Mechanism::Plain));
        let offered = vec!["scram-sha-256".to_string(), "PLAIN".to_string()];
        assert_eq!(choose(&offered, true), Some(Mechanism::ScramSha256));
    }

    #[test]
    fn cram_md5_matches_rfc2195_example() {
        // RFC 2195 §2: user "tim", password "tanstaaftanstaaf".
        let challenge = BASE64.encode("<1896.697170952@postoffice.reston.mci.net>");
        let response = cram_md5_response("tim", "tanstaaftanstaaf", &challenge).unwrap();
        let decoded = String::from_utf8(BASE64.decode(response).unwrap()).unwrap();
        assert_eq!(decoded, "tim b913a602c7eda7a495b4e6e7334d3890");
    }

    #[test]
    fn scram_sha256_matches_rfc7677_example() {
        // RFC 7677 §3: user "user", password "pencil", fixed client nonce.
        let mut scram = Scram::new("user", "pencil").unwrap();
        scram.nonce = "rOprNGfwEbeRWgbNEkqO".into();
        scram.client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO".into();
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let final_msg = scram.client_final(&BASE64.encode(server_first)).unwrap();
        let decoded = String::from_utf8(BASE64.decode(final_msg).unwrap()).unwrap();
        assert_eq!(
            decoded,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let server_final = BASE64.encode("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        assert_eq!(scram.verify_server_final(&server_final), Ok(()));
        let forged = BASE64.encode("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        assert_eq!(
            scram.verify_server_final(&forged),
            Err(SaslError::ServerSignature)
        );
    }

    #[test]
    fn scram_refuses_a_nonce_that_does_not_extend_ours() {
        let mut scram = Scram::new("user", "pencil").unwrap();
        let server_first = BASE64.encode("r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
        assert!(matches!(
            scram.client_final(&server_first),
            Err(SaslError::BadScram(_))
        ));
    }
}
