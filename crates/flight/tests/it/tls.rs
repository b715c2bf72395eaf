//! TLS with a self-signed certificate.

use arrow_flight::sql::client::FlightSqlServiceClient;
use lake_flight::FlightServer;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::support::{Lake, TestServer, query, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls() {
    let lake = Lake::new().await;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = certified.cert.pem();
    let key = certified.signing_key.serialize_pem();
    let server = TestServer::start(
        FlightServer::new(lake.session.clone())
            .with_tls(cert.clone().into_bytes(), key.into_bytes()),
    )
    .await;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&cert))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://{}", server.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    let batches = query(&mut client, "select count(*) as n from curated.orders")
        .await
        .unwrap();
    assert!(text(&batches).contains("| 3 |"));

    // Plain text is not answered.
    let plain = Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let mut client = FlightSqlServiceClient::new(channel);
        assert!(client.execute("select 1".into(), None).await.is_err());
    }
    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_is_a_clear_error() {
    let lake = Lake::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = FlightServer::new(lake.session.clone())
        .with_tls(b"not a certificate".to_vec(), b"not a key".to_vec())
        .serve_with_listener(listener, std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
}
