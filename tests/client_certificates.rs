//! Mutual TLS: a relay that requires a client certificate signed by its client CA
//! (`TestRelay::start_requiring_client_certificates`, rustls' WebPKI client verifier in front
//! of moq-relay-ietf). The right certificate, inline or from files, is admitted over both
//! schemes and objects flow; none, or one the relay does not trust, fails `connect` with
//! `ClientCertificateRejected` (the TLS error kind on every face); a key that does not match
//! its certificate, or an unreadable file, fails when the client is created.

mod common;

use common::*;
use moq_ffi::core::{
    Client, ClientCertificate, ClientConfig, ConfigError, ConnectError, PemSource,
};
use moq_test_relay::{ClientIdentity, TestRelay};

fn mtls_relay() -> TestRelay {
    let _ = env_logger::builder().is_test(true).try_init();
    TestRelay::start_requiring_client_certificates().expect("start the mTLS relay")
}

fn inline(identity: &ClientIdentity) -> ClientCertificate {
    ClientCertificate {
        chain: PemSource::Pem(identity.cert_pem.clone().into_bytes()),
        key: PemSource::Pem(identity.key_pem.clone().into_bytes()),
    }
}

fn with_certificate(
    relay: &TestRelay,
    scheme: &str,
    certificate: Option<ClientCertificate>,
) -> ClientConfig {
    let mut config = config(relay, scheme);
    config.tls.client_certificate = certificate;
    config
}

async fn refused(config: ClientConfig, what: &str) -> ConnectError {
    let client = Client::new(config).expect("valid config");
    let err = client.connect().await.expect_err(what);
    assert!(
        matches!(err, ConnectError::ClientCertificateRejected { .. }),
        "{what}: expected ClientCertificateRejected, got {err:?}"
    );
    assert!(!client.is_connected());
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_client_certificate_is_admitted_and_objects_flow_over_both_schemes() {
    let relay = mtls_relay();
    let certs = relay.client_certificates().expect("client certificates");
    for scheme in SCHEMES {
        let from_files = ClientCertificate {
            chain: PemSource::File(certs.accepted.cert_path.clone()),
            key: PemSource::File(certs.accepted.key_path.clone()),
        };
        let publishing = connect_with(with_certificate(
            &relay,
            scheme,
            Some(inline(&certs.accepted)),
        ))
        .await;
        let subscribing = connect_with(with_certificate(&relay, scheme, Some(from_files))).await;
        let namespace = format!("mtls/{scheme}");
        let publisher = announced(&publishing, &namespace, "t", stream()).await;
        let mut sub = subscribing.subscribe(&namespace, "t", sub()).await.unwrap();
        for i in 0..50 {
            publisher.publish(payload(i, 1000)).unwrap();
        }
        for i in 0..50 {
            let object = next_object(&mut sub, format_args!("object {i} over {scheme}")).await;
            assert_eq!(object.payload.as_ref(), payload(i, 1000).as_slice());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_untrusted_client_certificate_is_rejected_with_a_tls_error() {
    let relay = mtls_relay();
    let certs = relay.client_certificates().expect("client certificates");
    for scheme in SCHEMES {
        let err = refused(with_certificate(&relay, scheme, None), "no certificate").await;
        let message = err.to_string();
        assert!(message.contains("certificate_required"), "{message}");
        assert!(message.contains("client certificate"), "{message}");
        let err = refused(
            with_certificate(&relay, scheme, Some(inline(&certs.untrusted))),
            "an untrusted certificate",
        )
        .await;
        assert!(err.to_string().contains("TLS alert"), "{err}");
    }
    // The same relay admits the right one (the refusals were about the certificate).
    connect_with(with_certificate(
        &relay,
        "moqt",
        Some(inline(&certs.accepted)),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_client_certificates_fail_when_the_client_is_created() {
    let relay = mtls_relay();
    let certs = relay.client_certificates().expect("client certificates");
    let invalid = |certificate: ClientCertificate, what: &str| {
        let config = with_certificate(&relay, "moqt", Some(certificate));
        match Client::new(config) {
            Err(ConfigError::InvalidClientCertificate { reason }) => {
                assert!(!reason.contains("PRIVATE KEY-----\n"), "{what}: {reason}");
                reason
            }
            Err(other) => panic!("{what}: expected InvalidClientCertificate, got {other:?}"),
            Ok(_) => panic!("{what}: accepted"),
        }
    };
    // A key that belongs to another certificate.
    let mismatched = ClientCertificate {
        chain: PemSource::Pem(certs.accepted.cert_pem.clone().into_bytes()),
        key: PemSource::Pem(certs.untrusted.key_pem.clone().into_bytes()),
    };
    invalid(mismatched, "mismatched key");
    let missing = ClientCertificate {
        chain: PemSource::File("/nonexistent/client.pem".into()),
        key: PemSource::File(certs.accepted.key_path.clone()),
    };
    let reason = invalid(missing, "missing file");
    assert!(reason.contains("/nonexistent/client.pem"), "{reason}");
    let no_key = ClientCertificate {
        chain: PemSource::Pem(certs.accepted.cert_pem.clone().into_bytes()),
        key: PemSource::Pem(certs.accepted.cert_pem.clone().into_bytes()),
    };
    invalid(no_key, "a certificate where the key should be");
    // The configuration's debug text never shows the key.
    let shown = format!("{:?}", inline(&certs.accepted));
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}
