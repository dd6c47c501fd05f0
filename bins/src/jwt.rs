//! Bearer JWTs from an identity provider: the `[jwt]` section of the config
//! file, its keys loaded, and the [`TokenVerifier`] the core calls for
//! tokens that are not static ones. README, "Tokens from an identity
//! provider (JWT)".
//!
//! `sub` is the user id; `exp` is required and, like `nbf`, checked with
//! the leeway; `iss` and `aud` are checked when the config names them. The
//! key is chosen by the token's `alg` (and `kid`, when both the token and
//! the key have one); `none` and algorithms without a configured key are
//! refused.

use std::path::Path;
use std::sync::Arc;

use chat_sansio::chat::policy::{AuthError, Claims, Policy, TokenVerifier};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The default leeway on `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;

/// The `[jwt]` section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Checked against `iss` when set.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Checked against `aud` when set.
    #[serde(default)]
    pub audience: Option<String>,
    /// Slack on `exp` and `nbf`, for clocks that disagree.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// The claim holding the display name.
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// The claim holding the roles (an array of strings).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Tokens with this role may call the moderation service.
    #[serde(default)]
    pub admin_role: Option<String>,
    /// The keys tokens may be signed with.
    #[serde(default, rename = "key")]
    pub keys: Vec<KeyConfig>,
}

/// One `[[jwt.key]]`: a secret (HS256), a PEM file (RS256, ES256, EdDSA),
/// or a JWKS file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// `HS256`, `RS256`, `ES256` or `EdDSA`; from the keys themselves for
    /// a JWKS file.
    #[serde(default)]
    pub alg: Option<String>,
    /// Only tokens whose header names this `kid` use the key.
    #[serde(default)]
    pub kid: Option<String>,
    /// The HS256 secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// A PEM public key; relative paths are from the config file's folder.
    #[serde(default)]
    pub pem_file: Option<String>,
    /// A JWKS (`{"keys": [...]}`) file.
    #[serde(default)]
    pub jwks_file: Option<String>,
}

fn default_leeway() -> u64 {
    DEFAULT_LEEWAY_SECONDS
}

fn default_name_claim() -> String {
    "name".into()
}

fn default_roles_claim() -> String {
    "roles".into()
}

/// A key tokens may be signed with.
struct Key {
    alg: Algorithm,
    kid: Option<String>,
    key: DecodingKey,
}

/// Verifies bearer JWTs against the configured keys.
pub struct JwtVerifier {
    keys: Vec<Key>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
    name_claim: String,
    roles_claim: String,
}

impl std::fmt::Debug for JwtVerifier {
    /// Names the keys' algorithms, never a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algs: Vec<_> = self.keys.iter().map(|k| k.alg).collect();
        f.debug_struct("JwtVerifier")
            .field("keys", &algs)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Installs the verifier the `[jwt]` section describes into `policy`, with
/// key files found from `base` (the config file's folder).
pub fn install(policy: &mut Policy, config: &JwtConfig, base: &Path) -> Result<(), String> {
    let verifier = JwtVerifier::new(config, base)?;
    policy.set_verifier(Arc::new(verifier));
    if let Some(role) = &config.admin_role {
        policy.set_admin_role(role);
    }
    Ok(())
}

impl JwtVerifier {
    /// Loads the keys; errors name the key and what is wrong.
    pub fn new(config: &JwtConfig, base: &Path) -> Result<JwtVerifier, String> {
        let mut keys = Vec::new();
        for (i, k) in config.keys.iter().enumerate() {
            load_key(k, base, &mut keys).map_err(|e| format!("jwt.key #{}: {e}", i + 1))?;
        }
        if keys.is_empty() {
            return Err("[jwt] needs at least one [[jwt.key]]".into());
        }
        Ok(JwtVerifier {
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway_seconds,
            name_claim: config.name_claim.clone(),
            roles_claim: config.roles_claim.clone(),
        })
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "sub"]);
        match &self.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
        }
        v
    }

    fn claims(&self, body: &serde_json::Map<String, serde_json::Value>) -> Result<Claims, String> {
        let user_id = body
            .get("sub")
            .and_then(|s| s.as_str())
            .ok_or("sub is not a string")?
            .to_owned();
        let name = match body.get(&self.name_claim) {
            None => String::new(),
            Some(v) => v
                .as_str()
                .ok_or_else(|| format!("{} is not a string", self.name_claim))?
                .to_owned(),
        };
        let roles = match body.get(&self.roles_claim) {
            None => Vec::new(),
            Some(v) => v
                .as_array()
                .and_then(|a| a.iter().map(|r| r.as_str().map(str::to_owned)).collect())
                .ok_or_else(|| format!("{} is not an array of strings", self.roles_claim))?,
        };
        Ok(Claims {
            user_id,
            name,
            roles,
        })
    }
}

impl TokenVerifier for JwtVerifier {
    fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.split('.').count() != 3 {
            // Not a JWT: an unknown static token.
            return Err(AuthError::UnknownToken);
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Rejected(format!("malformed token: {e}")))?;
        let candidates = self.keys.iter().filter(|k| {
            k.alg == header.alg
                && match (&k.kid, &header.kid) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        });
        let mut last = AuthError::Rejected(format!("no key for algorithm {:?}", header.alg));
        for key in candidates {
            let validation = self.validation(key.alg);
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                &key.key,
                &validation,
            ) {
                Ok(data) => return self.claims(&data.claims).map_err(AuthError::Rejected),
                // Another key of the same algorithm may have signed it.
                Err(e) if *e.kind() == ErrorKind::InvalidSignature => last = reason(&e),
                Err(e) => return Err(reason(&e)),
            }
        }
        Err(last)
    }
}

/// What a client is told when its token is refused.
fn reason(e: &jsonwebtoken::errors::Error) -> AuthError {
    let why = match e.kind() {
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidAudience => "wrong audience".to_owned(),
        ErrorKind::InvalidIssuer => "wrong issuer".to_owned(),
        ErrorKind::MissingRequiredClaim(c) => format!("the {c} claim is missing"),
        _ => format!("malformed token: {e}"),
    };
    AuthError::Rejected(why)
}

fn load_key(k: &KeyConfig, base: &Path, keys: &mut Vec<Key>) -> Result<(), String> {
    let alg = k
        .alg
        .as_deref()
        .map(|a| {
            a.parse::<Algorithm>()
                .map_err(|_| format!("unknown alg {a:?}"))
        })
        .transpose()?;
    let read = |file: &str| {
        let path = base.join(file);
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    match (&k.secret, &k.pem_file, &k.jwks_file) {
        (Some(secret), None, None) => {
            if alg != Some(Algorithm::HS256) {
                return Err("a secret is for alg = \"HS256\"".into());
            }
            keys.push(Key {
                alg: Algorithm::HS256,
                kid: k.kid.clone(),
                key: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        (None, Some(file), None) => {
            let pem = read(file)?;
            let (alg, key) = match alg {
                Some(Algorithm::RS256) => (Algorithm::RS256, DecodingKey::from_rsa_pem(&pem)),
                Some(Algorithm::ES256) => (Algorithm::ES256, DecodingKey::from_ec_pem(&pem)),
                Some(Algorithm::EdDSA) => (Algorithm::EdDSA, DecodingKey::from_ed_pem(&pem)),
                _ => return Err("pem_file needs alg = \"RS256\", \"ES256\" or \"EdDSA\"".into()),
            };
            let key = key.map_err(|e| format!("{file}: {e}"))?;
            keys.push(Key {
                alg,
                kid: k.kid.clone(),
                key,
            });
        }
        (None, None, Some(file)) => {
            let set: JwkSet = serde_json::from_slice(&read(file)?)
                .map_err(|e| format!("{file}: not a JWKS: {e}"))?;
            for jwk in &set.keys {
                let key_alg = jwk_alg(jwk).or(alg).ok_or_else(|| {
                    format!("{file}: a key without \"alg\" whose algorithm cannot be told")
                })?;
                let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("{file}: {e}"))?;
                keys.push(Key {
                    alg: key_alg,
                    kid: jwk.common.key_id.clone().or_else(|| k.kid.clone()),
                    key,
                });
            }
        }
        _ => return Err("give exactly one of secret, pem_file, jwks_file".into()),
    }
    Ok(())
}

/// A JWK's algorithm: its `alg`, or what its key type implies.
fn jwk_alg(jwk: &Jwk) -> Option<Algorithm> {
    if let Some(a) = &jwk.common.key_algorithm {
        return format!("{a:?}").parse().ok();
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
