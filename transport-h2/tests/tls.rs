//! TLS (feature `tls`): the chat over TLS with ALPN h2 between our server
//! and our client, with certificates made by rcgen for each run; and what
//! must fail does, cleanly, without disturbing anyone: an untrusted
//! certificate, a client that offers only HTTP/1.1, plaintext HTTP/2 on the
//! TLS port, bad PEM files.

#![cfg(feature = "tls")]

mod common;

use common::messages::chat;
use common::server::start_tls;
use common::time::run;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chat_proto::{paths, ChatMessage};
use smol::net::TcpStream;
use transport_h2::tls::{self, rustls, TlsConnector};
use transport_h2::{CallOptions, Channel, ServerConfig};

/// A fresh self-signed certificate for localhost and 127.0.0.1, as PEM
/// (certificate, key).
fn certificate() -> (String, String) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let made = rcgen::generate_simple_self_signed(names).expect("rcgen");
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// Writes `files` into a fresh directory; returns their paths.
fn write_files(files: &[(&str, &str)]) -> Vec<PathBuf> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("transport-tls-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    files
        .iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write");
            path
        })
        .collect()
}

/// A chat server with TLS on 127.0.0.1:0; returns its address and the PEM
/// of its certificate.
fn start() -> (SocketAddr, String) {
    let (cert, key) = certificate();
    let paths = write_files(&[("cert.pem", &cert), ("key.pem", &key)]);
    let config = tls::server_config_from_pem(&paths[0], &paths[1]).expect("server config");
    let addr = start_tls(common::chat(), ServerConfig::default(), config);
    (addr, cert)
}

fn trusting(cert_pem: &str) -> Arc<rustls::ClientConfig> {
    let path = write_files(&[("ca.pem", cert_pem)]);
    tls::client_config_from_pem(&path[0]).expect("client config")
}

/// One JoinChat call: a message, its echo, half-close, OK.
async fn echo(channel: &Channel, text: &str) {
    let mut call = channel
        .call(paths::JOIN_CHAT, CallOptions::default())
        .await
        .expect("JoinChat");
    call.sender.send(&chat("t", text)).await.expect("send");
    call.sender.close().expect("half-close");
    let got: ChatMessage = call.receiver.message().await.expect("ok").expect("echo");
    assert_eq!(got.message, text);
    assert!(call
        .receiver
        .message::<ChatMessage>()
        .await
        .expect("OK")
        .is_none());
}

#[test]
fn chat_over_tls_with_alpn_h2() {
    let (addr, cert) = start();
    run(10, async {
        for name in ["localhost", "127.0.0.1"] {
            let channel = Channel::connect_tls(&addr.to_string(), name, trusting(&cert))
                .await
                .expect("TLS connect");
            echo(&channel, &format!("over TLS to {name}")).await;
        }
        // A client that offers no ALPN at all gets HTTP/2 all the same.
        let mut bare = (*trusting(&cert)).clone();
        bare.alpn_protocols.clear();
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = TlsConnector::from(Arc::new(bare))
            .connect(name, tcp)
            .await
            .expect("handshake without ALPN");
        assert_eq!(tls.get_ref().1.alpn_protocol(), None);
        let channel = Channel::with_io(tls, "localhost").await.expect("h2");
        echo(&channel, "no ALPN").await;
    });
}

#[test]
fn what_must_fail_fails_and_the_server_goes_on() {
    let (addr, cert) = start();
    run(20, async {
        // A client that trusts another certificate refuses the server.
        let (other, _) = certificate();
        let err = Channel::connect_tls(&addr.to_string(), "localhost", trusting(&other))
            .await
            .err()
            .expect("an untrusted certificate is refused");
        assert!(err.to_string().contains("certificate"), "{err}");

        // A name the certificate does not hold.
        let err = Channel::connect_tls(&addr.to_string(), "example.com", trusting(&cert))
            .await
            .err()
            .expect("a wrong name is refused");
        assert!(err.to_string().contains("certificate"), "{err}");

        // A client that offers ALPN without h2 is refused by the server.
        let mut http1 = (*trusting(&cert)).clone();
        http1.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let refused = TlsConnector::from(Arc::new(http1)).connect(name, tcp).await;
        assert!(refused.is_err(), "a handshake without h2 in ALPN must fail");

        // Plaintext HTTP/2 on the TLS port: the connection fails, at once.
        let plain = Channel::connect(&addr.to_string()).await;
        if let Ok(plain) = plain {
            let call = plain.call(paths::JOIN_CHAT, CallOptions::default()).await;
            if let Ok(mut call) = call {
                assert!(call.receiver.message::<ChatMessage>().await.is_err());
            }
        }

        // Through all of that, a good client is served.
        let channel = Channel::connect_tls(&addr.to_string(), "localhost", trusting(&cert))
            .await
            .expect("TLS connect");
        echo(&channel, "still served").await;
    });
}

#[test]
fn bad_pem_files_are_clear_errors() {
    let (cert, key) = certificate();
    let paths = write_files(&[
        ("cert.pem", &cert),
        ("key.pem", &key),
        ("empty.pem", ""),
        ("junk.pem", "not a certificate\n"),
    ]);
    let missing = paths[0].with_file_name("missing.pem");
    let no_cert = tls::server_config_from_pem(&paths[2], &paths[1]).expect_err("no certificate");
    assert!(
        no_cert.to_string().contains("no PEM certificate"),
        "{no_cert}"
    );
    let junk = tls::server_config_from_pem(&paths[3], &paths[1]).expect_err("junk");
    assert!(junk.to_string().contains("junk.pem"), "{junk}");
    let no_key = tls::server_config_from_pem(&paths[0], &paths[0]).expect_err("a cert as key");
    assert!(no_key.to_string().contains("private key"), "{no_key}");
    let gone = tls::server_config_from_pem(&missing, &paths[1]).expect_err("missing");
    assert!(gone.to_string().contains("missing.pem"), "{gone}");
    // A key that is not the certificate's.
    let (_, other_key) = certificate();
    let other = write_files(&[("other.pem", &other_key)]);
    let mismatch = tls::server_config_from_pem(&paths[0], &other[0]).expect_err("mismatch");
    assert!(
        mismatch.to_string().contains("certificate and key"),
        "{mismatch}"
    );
}
