//! Key material and token signing for the emulator, all on aws-lc-rs.
//!
//! Real RSA (2048/3072/4096) and EC (P-256, P-256K, P-384, P-521) keys for the Key Vault data
//! plane, `RSA-OAEP` / `RSA-OAEP-256` / `RSA1_5` wrap and unwrap, and the RS256 signing keys behind the
//! Entra access tokens and the emulator's own OIDC issuer (for "projected service account
//! tokens"). It does not decide who may use a key: that is `keyvault` and `authz`.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SecureRandom;
use aws_lc_rs::rsa::{
    KeyPair, KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey,
    PrivateDecryptingKey,
};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P256K1_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING, ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A failure in key generation or a cryptographic operation.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The requested key size or curve is not one Key Vault supports.
    #[error("unsupported key parameters: {0}")]
    Unsupported(String),
    /// The operation failed inside the crypto library (bad ciphertext, wrong length...).
    #[error("cryptographic operation failed: {0}")]
    Failed(String),
}

fn failed(what: &str) -> impl Fn(aws_lc_rs::error::Unspecified) -> CryptoError + '_ {
    move |_| CryptoError::Failed(what.to_owned())
}

/// Private key material of one key version.
#[derive(Clone, Debug)]
pub enum KeyMaterial {
    /// An RSA key: PKCS#8 private key plus the public modulus and exponent (big-endian).
    Rsa {
        /// PKCS#8 v1 DER of the private key.
        pkcs8: Vec<u8>,
        /// Modulus, big-endian without leading zeros.
        n: Vec<u8>,
        /// Public exponent, big-endian.
        e: Vec<u8>,
        /// Size in bits.
        bits: u32,
    },
    /// An EC key on a named curve.
    Ec {
        /// The JWK curve name (`P-256`, `P-256K`, `P-384`, `P-521`).
        crv: String,
        /// X coordinate, big-endian.
        x: Vec<u8>,
        /// Y coordinate, big-endian.
        y: Vec<u8>,
    },
}

impl KeyMaterial {
    /// Generates an RSA key of `bits` (2048, 3072 or 4096).
    pub fn generate_rsa(bits: u32) -> Result<Self, CryptoError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            other => {
                return Err(CryptoError::Unsupported(format!(
                    "RSA key size {other} (allowed: 2048, 3072, 4096)"
                )));
            }
        };
        let private = PrivateDecryptingKey::generate(size).map_err(failed("RSA generation"))?;
        let pkcs8 = private
            .as_der()
            .map_err(failed("RSA PKCS#8 export"))?
            .as_ref()
            .to_vec();
        let pair = KeyPair::from_pkcs8(&pkcs8)
            .map_err(|e| CryptoError::Failed(format!("RSA PKCS#8 import: {e}")))?;
        let public = pair.public_key();
        Ok(Self::Rsa {
            n: public.modulus().big_endian_without_leading_zero().to_vec(),
            e: public.exponent().big_endian_without_leading_zero().to_vec(),
            pkcs8,
            bits,
        })
    }

    /// Generates an EC key on the JWK curve `crv`.
    pub fn generate_ec(crv: &str) -> Result<Self, CryptoError> {
        let (alg, coord) = match crv {
            "P-256" => (&ECDSA_P256_SHA256_FIXED_SIGNING, 32),
            "P-256K" => (&ECDSA_P256K1_SHA256_FIXED_SIGNING, 32),
            "P-384" => (&ECDSA_P384_SHA384_FIXED_SIGNING, 48),
            "P-521" => (&ECDSA_P521_SHA512_FIXED_SIGNING, 66),
            other => {
                return Err(CryptoError::Unsupported(format!(
                    "curve {other} (allowed: P-256, P-256K, P-384, P-521)"
                )));
            }
        };
        let pair = EcdsaKeyPair::generate(alg).map_err(failed("EC generation"))?;
        // Uncompressed SEC1 point: 0x04 || X || Y.
        let point = pair.public_key().as_ref();
        if point.len() != 1 + 2 * coord || point[0] != 4 {
            return Err(CryptoError::Failed(
                "unexpected EC public key encoding".into(),
            ));
        }
        Ok(Self::Ec {
            crv: crv.to_owned(),
            x: point[1..=coord].to_vec(),
            y: point[1 + coord..].to_vec(),
        })
    }

    /// RSA key size in bits, or `None` for EC keys.
    #[must_use]
    pub fn rsa_bits(&self) -> Option<u32> {
        match self {
            Self::Rsa { bits, .. } => Some(*bits),
            Self::Ec { .. } => None,
        }
    }

    /// Encrypts (wraps) `plain` with the public key under the JWA algorithm `alg`.
    pub fn wrap(&self, alg: &str, plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let Self::Rsa { pkcs8, .. } = self else {
            return Err(CryptoError::Unsupported(format!("{alg} on an EC key")));
        };
        let private = PrivateDecryptingKey::from_pkcs8(pkcs8)
            .map_err(|e| CryptoError::Failed(e.to_string()))?;
        let public = private.public_key();
        match alg {
            "RSA-OAEP" | "RSA-OAEP-256" => {
                let oaep = if alg == "RSA-OAEP" {
                    &OAEP_SHA1_MGF1SHA1
                } else {
                    &OAEP_SHA256_MGF1SHA256
                };
                let key = OaepPublicEncryptingKey::new(public).map_err(failed("OAEP key"))?;
                let mut out = vec![0u8; key.ciphertext_size()];
                let len = key
                    .encrypt(oaep, plain, &mut out, None)
                    .map_err(failed("OAEP encryption (plaintext too long?)"))?
                    .len();
                out.truncate(len);
                Ok(out)
            }
            "RSA1_5" => {
                let key = Pkcs1PublicEncryptingKey::new(public).map_err(failed("PKCS#1 key"))?;
                let mut out = vec![0u8; key.ciphertext_size()];
                let len = key
                    .encrypt(plain, &mut out)
                    .map_err(failed("PKCS#1 v1.5 encryption (plaintext too long?)"))?
                    .len();
                out.truncate(len);
                Ok(out)
            }
            other => Err(CryptoError::Unsupported(format!("algorithm {other}"))),
        }
    }

    /// Decrypts (unwraps) `cipher` with the private key under the JWA algorithm `alg`.
    pub fn unwrap_key(&self, alg: &str, cipher: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let Self::Rsa { pkcs8, .. } = self else {
            return Err(CryptoError::Unsupported(format!("{alg} on an EC key")));
        };
        let private = PrivateDecryptingKey::from_pkcs8(pkcs8)
            .map_err(|e| CryptoError::Failed(e.to_string()))?;
        match alg {
            "RSA-OAEP" | "RSA-OAEP-256" => {
                let oaep = if alg == "RSA-OAEP" {
                    &OAEP_SHA1_MGF1SHA1
                } else {
                    &OAEP_SHA256_MGF1SHA256
                };
                let key = OaepPrivateDecryptingKey::new(private).map_err(failed("OAEP key"))?;
                let mut out = vec![0u8; key.min_output_size()];
                let len = key
                    .decrypt(oaep, cipher, &mut out, None)
                    .map_err(failed("OAEP decryption"))?
                    .len();
                out.truncate(len);
                Ok(out)
            }
            "RSA1_5" => {
                let key = Pkcs1PrivateDecryptingKey::new(private).map_err(failed("PKCS#1 key"))?;
                let mut out = vec![0u8; key.min_output_size()];
                let len = key
                    .decrypt(cipher, &mut out)
                    .map_err(failed("PKCS#1 v1.5 decryption"))?
                    .len();
                out.truncate(len);
                Ok(out)
            }
            other => Err(CryptoError::Unsupported(format!("algorithm {other}"))),
        }
    }
}

/// base64url without padding, as JWK and Key Vault use.
#[must_use]
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url, tolerating padding and the standard alphabet (clients vary).
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(trimmed)
        .ok()
        .or_else(|| STANDARD.decode(text).ok())
}

/// 32 lowercase hex characters, the shape of a Key Vault key version.
#[must_use]
pub fn random_hex32() -> String {
    let mut bytes = [0u8; 16];
    // NB: a failing system RNG is unrecoverable; fall back to a UUID, which has its own source.
    if aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .is_err()
    {
        return "0".repeat(32);
    }
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A random (version 4) GUID in its usual lower-case form.
#[must_use]
pub fn guid() -> String {
    let mut b = [0u8; 16];
    // NB: a failing system RNG is unrecoverable for a test double; all-zero is still a GUID.
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Whether `s` is a GUID (`8-4-4-4-12` hex digits).
#[must_use]
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// An RS256 signing key with its verification half, used for JWTs the emulator issues.
pub struct JwtKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl JwtKey {
    /// Generates a fresh RSA-2048 signing key with key id `kid`.
    pub fn generate(kid: &str) -> Result<Self, CryptoError> {
        let KeyMaterial::Rsa { pkcs8, n, e, .. } = KeyMaterial::generate_rsa(2048)? else {
            return Err(CryptoError::Failed("expected an RSA key".into()));
        };
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(&pkcs8)
        );
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|err| CryptoError::Failed(format!("JWT signing key: {err}")))?;
        let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
        Ok(Self {
            kid: kid.to_owned(),
            encoding,
            decoding,
        })
    }

    /// Signs `claims` as an RS256 JWT.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, CryptoError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| CryptoError::Failed(format!("JWT signing: {e}")))
    }

    /// Verifies the signature of an RS256 JWT and returns its claims. Time and audience checks
    /// are the caller's: the emulator has its own clock.
    pub fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, String> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<T>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_oaep_256_round_trips_and_other_keys_cannot_unwrap() {
        let key = KeyMaterial::generate_rsa(2048).expect("keygen");
        let other = KeyMaterial::generate_rsa(2048).expect("keygen");
        let secret = b"0123456789abcdef0123456789abcdef";
        for alg in ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"] {
            let wrapped = key.wrap(alg, secret).expect("wrap");
            assert_eq!(wrapped.len(), 256, "{alg} ciphertext is one modulus long");
            assert_eq!(key.unwrap_key(alg, &wrapped).expect("unwrap"), secret);
            assert!(
                other.unwrap_key(alg, &wrapped).is_err(),
                "{alg}: a foreign key must fail"
            );
        }
    }

    #[test]
    fn ec_curves_have_their_coordinate_sizes() {
        for (crv, len) in [("P-256", 32), ("P-256K", 32), ("P-384", 48), ("P-521", 66)] {
            let KeyMaterial::Ec { x, y, .. } = KeyMaterial::generate_ec(crv).expect("keygen")
            else {
                panic!("expected EC");
            };
            assert_eq!((x.len(), y.len()), (len, len), "{crv}");
        }
        assert!(KeyMaterial::generate_rsa(1024).is_err());
    }
}
