//! The verifier against tokens made here with `jsonwebtoken::encode`: right
//! and wrong keys, expiry, audience and issuer, HS256, ES256, EdDSA (keys
//! generated with rcgen) and RS256 (a fixed key in `testdata/`), JWKS
//! files; and the `[jwt]` section in a config.

use super::*;
use chat_sansio::chat::policy::Identity;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "a test secret of reasonable length";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn section(keys: &str) -> JwtConfig {
    let text = format!(
        "issuer = \"https://id.example.com\"\naudience = \"chat\"\nleeway_seconds = 5\n{keys}"
    );
    toml::from_str(&text).unwrap()
}

fn hs256() -> JwtVerifier {
    let keys = format!("[[key]]\nalg = \"HS256\"\nsecret = \"{SECRET}\"\n");
    JwtVerifier::new(&section(&keys), Path::new(".")).unwrap()
}

fn claims(exp_from_now: i64) -> serde_json::Value {
    json!({
        "sub": "zed",
        "name": "Zed",
        "roles": ["ops", "audit"],
        "iss": "https://id.example.com",
        "aud": "chat",
        "exp": now() as i64 + exp_from_now,
    })
}

fn hs_token(body: &serde_json::Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        body,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn rejected(v: &JwtVerifier, token: &str) -> String {
    match v.verify(token) {
        Err(AuthError::Rejected(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn hs256_tokens_give_their_claims() {
    let v = hs256();
    let got = v.verify(&hs_token(&claims(600), SECRET)).unwrap();
    assert_eq!(
        got,
        Claims {
            user_id: "zed".into(),
            name: "Zed".into(),
            roles: vec!["ops".into(), "audit".into()],
        }
    );
}

#[test]
fn wrong_key_expired_audience_issuer_and_missing_claims_are_refused() {
    let v = hs256();
    assert_eq!(
        rejected(&v, &hs_token(&claims(600), "another secret")),
        "bad signature"
    );
    assert_eq!(
        rejected(&v, &hs_token(&claims(-60), SECRET)),
        "the token has expired"
    );
    // Within the leeway it still counts.
    assert!(v.verify(&hs_token(&claims(-2), SECRET)).is_ok());
    let mut body = claims(600);
    body["aud"] = json!("billing");
    assert_eq!(rejected(&v, &hs_token(&body, SECRET)), "wrong audience");
    let mut body = claims(600);
    body["iss"] = json!("https://evil.example.com");
    assert_eq!(rejected(&v, &hs_token(&body, SECRET)), "wrong issuer");
    let mut body = claims(600);
    body["nbf"] = json!(now() + 600);
    assert!(rejected(&v, &hs_token(&body, SECRET)).contains("not valid yet"));
    let mut body = claims(600);
    body.as_object_mut().unwrap().remove("exp");
    assert!(rejected(&v, &hs_token(&body, SECRET)).contains("exp"));
    let mut body = claims(600);
    body["roles"] = json!("ops");
    assert!(rejected(&v, &hs_token(&body, SECRET)).contains("roles"));
    // Not a JWT at all: an unknown static token, as without [jwt].
    assert_eq!(v.verify("plain-token"), Err(AuthError::UnknownToken));
}

#[test]
fn es256_with_a_pem_key_and_the_same_key_in_a_jwks_file() {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let dir = std::env::temp_dir().join(format!("jwt-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("es256.pem"), pair.public_key_pem()).unwrap();
    let keys = "[[key]]\nalg = \"ES256\"\npem_file = \"es256.pem\"\n";
    let v = JwtVerifier::new(&section(keys), &dir).unwrap();
    let signing = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    let token = encode(&Header::new(Algorithm::ES256), &claims(600), &signing).unwrap();
    assert_eq!(v.verify(&token).unwrap().user_id, "zed");

    // Another ES256 key: a bad signature. An HS256 token: no key for it.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let forged = encode(
        &Header::new(Algorithm::ES256),
        &claims(600),
        &EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(rejected(&v, &forged), "bad signature");
    assert!(rejected(&v, &hs_token(&claims(600), SECRET)).contains("no key for algorithm"));

    // The same public key as a JWK (x and y from the uncompressed point).
    let raw = pair.public_key_raw();
    assert_eq!((raw.len(), raw[0]), (65, 4));
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
        "x": b64.encode(&raw[1..33]), "y": b64.encode(&raw[33..]),
    }]});
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
    let v = JwtVerifier::new(&section("[[key]]\njwks_file = \"jwks.json\"\n"), &dir).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    let token = encode(&header, &claims(600), &signing).unwrap();
    assert_eq!(v.verify(&token).unwrap().name, "Zed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_config_section_installs_the_verifier_beside_static_tokens() {
    let text = format!(
        "[[user]]\nid = \"ann\"\ntoken_sha256 = \"{}\"\n\
         [[room]]\nid = \"ops\"\nreaders = [\"role:ops\"]\nposters = [\"role:ops\"]\n\
         [jwt]\naudience = \"chat\"\nadmin_role = \"chat-admin\"\n\
         [[jwt.key]]\nalg = \"HS256\"\nsecret = \"{SECRET}\"\n",
        chat_sansio::chat::policy::hash_token("ann-token")
    );
    let p = crate::config::parse(&text).unwrap();
    assert_eq!(
        p.authenticate(Some(b"Bearer ann-token")),
        Ok(Identity::User("ann".into()))
    );
    let auth = format!("Bearer {}", hs_token(&claims(600), SECRET));
    let zed = p.authenticate(Some(auth.as_bytes())).unwrap();
    assert!(p.check_post(&zed, "ops").is_ok());
    assert!(!p.is_admin(&zed));
    assert!(crate::config::parse("[jwt]\naudience = \"chat\"\n")
        .unwrap_err()
        .contains("jwt.key"));
}

#[test]
fn eddsa_with_a_pem_key() {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let dir = std::env::temp_dir().join(format!("jwt-ed-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ed.pem"), pair.public_key_pem()).unwrap();
    let keys = "[[key]]\nalg = \"EdDSA\"\npem_file = \"ed.pem\"\n";
    let v = JwtVerifier::new(&section(keys), &dir).unwrap();
    let signing = EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap();
    let token = encode(&Header::new(Algorithm::EdDSA), &claims(600), &signing).unwrap();
    assert_eq!(v.verify(&token).unwrap().roles, vec!["ops", "audit"]);
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let forged = encode(
        &Header::new(Algorithm::EdDSA),
        &claims(600),
        &EncodingKey::from_ed_pem(other.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(rejected(&v, &forged), "bad signature");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rs256_with_a_pem_key_and_the_same_key_in_a_jwks_file() {
    let private = include_str!("testdata/rs256-test-private.pem");
    let dir = std::env::temp_dir().join(format!("jwt-rsa-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rs256.pem"),
        include_str!("testdata/rs256-test-public.pem"),
    )
    .unwrap();
    let keys = "[[key]]\nalg = \"RS256\"\npem_file = \"rs256.pem\"\n";
    let v = JwtVerifier::new(&section(keys), &dir).unwrap();
    let signing = EncodingKey::from_rsa_pem(private.as_bytes()).unwrap();
    let token = encode(&Header::new(Algorithm::RS256), &claims(600), &signing).unwrap();
    assert_eq!(v.verify(&token).unwrap().user_id, "zed");

    // Signed with the right key but tampered with: a bad signature. An
    // ES256 or HS256 token: no key for it.
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut body: serde_json::Value =
        serde_json::from_slice(&b64.decode(&parts[1]).unwrap()).unwrap();
    body["roles"] = json!(["chat-admin"]);
    parts[1] = b64.encode(body.to_string());
    assert_eq!(rejected(&v, &parts.join(".")), "bad signature");
    assert!(rejected(&v, &hs_token(&claims(600), SECRET)).contains("no key for algorithm"));
    // A PEM key whose alg is not one a PEM can carry is refused at load.
    let bad = "[[key]]\nalg = \"HS256\"\npem_file = \"rs256.pem\"\n";
    assert!(JwtVerifier::new(&section(bad), &dir).is_err());

    // The same public key as a JWK (n and e), chosen by its kid; a JWK
    // without "alg" gets RS256 from its key type.
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, Algorithm::RS256).unwrap();
    let mut jwk = serde_json::to_value(&jwk).unwrap();
    jwk["kid"] = json!("r1");
    jwk.as_object_mut().unwrap().remove("alg");
    std::fs::write(dir.join("jwks.json"), json!({ "keys": [jwk] }).to_string()).unwrap();
    let v = JwtVerifier::new(&section("[[key]]\njwks_file = \"jwks.json\"\n"), &dir).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("r1".into());
    let token = encode(&header, &claims(600), &signing).unwrap();
    assert_eq!(v.verify(&token).unwrap().name, "Zed");
    let _ = std::fs::remove_dir_all(&dir);
}
