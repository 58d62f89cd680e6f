//! A stand-in of a BMC's DMTF Redfish service, for the real
//! `fence_redfish` agent: HTTPS with a self-signed certificate (the agent
//! speaks only https; tests pass `ssl_insecure=1`) and HTTP Basic
//! authentication, and the resources the agent walks, as DSP0266 (the
//! Redfish specification) and the ComputerSystem schema describe them:
//!
//! - `GET /redfish/v1` (the service root) links `Systems`;
//! - `GET /redfish/v1/Systems`, a collection: `Members` of `@odata.id`s;
//! - `GET /redfish/v1/Systems/1`, a `ComputerSystem` with `PowerState`
//!   (`On`, `Off`) and `Actions` → `#ComputerSystem.Reset` → `target`;
//! - `POST <target>` with `{"ResetType": "On" | "ForceOff" | ...}`
//!   changes `PowerState`; answered 204 No Content as the spec allows.
//!
//! Every request is recorded (method, path, `ResetType`).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};

const SYSTEM: &str = "/redfish/v1/Systems/1";
const RESET: &str = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub reset_type: Option<String>,
}

struct Bmc {
    power: String,
    user: String,
    password: String,
    seen: Vec<Seen>,
}

pub struct Redfish {
    addr: SocketAddr,
    bmc: Arc<Mutex<Bmc>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Redfish {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Redfish {
    /// A BMC on 127.0.0.1 whose system is `power` (`On`/`Off`), accepting
    /// `user`/`password`.
    pub async fn start(power: &str, user: &str, password: &str) -> Redfish {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("self-signed certificate");
        let der = pki_types::CertificateDer::from(cert.cert.der().to_vec());
        let key = pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
            .expect("private key");
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .expect("TLS config");
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let bmc = Arc::new(Mutex::new(Bmc {
            power: power.into(),
            user: user.into(),
            password: password.into(),
            seen: Vec::new(),
        }));
        let shared = bmc.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let bmc = shared.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req| {
                        let bmc = bmc.clone();
                        async move { Ok::<_, std::convert::Infallible>(respond(req, &bmc).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Redfish { addr, bmc, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn power(&self) -> String {
        self.bmc.lock().expect("bmc").power.clone()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.bmc.lock().expect("bmc").seen.clone()
    }
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("OData-Version", "4.0")
        .body(Full::new(Bytes::from(v.to_string())))
        .expect("response")
}

fn basic(user: &str, password: &str) -> String {
    // RFC 7617: base64 of `user:password`, by hand (no base64 crate).
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

async fn respond(req: Request<hyper::body::Incoming>, bmc: &Mutex<Bmc>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reset_type = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["ResetType"].as_str().map(str::to_owned));
    let mut b = bmc.lock().expect("bmc");
    b.seen.push(Seen {
        method: method.to_string(),
        path: path.clone(),
        reset_type: reset_type.clone(),
    });
    if auth.as_deref() != Some(basic(&b.user, &b.password).as_str()) {
        // DSP0266: an unauthenticated request is 401 with an error body.
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": {"code": "Base.1.0.GeneralError", "message": "unauthorized"}}),
        );
    }
    match (method, path.as_str()) {
        (Method::GET, "/redfish/v1") => json(
            StatusCode::OK,
            serde_json::json!({
                "@odata.id": "/redfish/v1/",
                "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
                "Id": "RootService",
                "RedfishVersion": "1.6.0",
                "Systems": {"@odata.id": "/redfish/v1/Systems"}
            }),
        ),
        (Method::GET, "/redfish/v1/Systems") => json(
            StatusCode::OK,
            serde_json::json!({
                "@odata.id": "/redfish/v1/Systems",
                "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
                "Members": [{"@odata.id": SYSTEM}],
                "Members@odata.count": 1
            }),
        ),
        (Method::GET, SYSTEM) => json(
            StatusCode::OK,
            serde_json::json!({
                "@odata.id": SYSTEM,
                "@odata.type": "#ComputerSystem.v1_10_0.ComputerSystem",
                "Id": "1",
                "PowerState": b.power,
                "Actions": {"#ComputerSystem.Reset": {
                    "target": RESET,
                    "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "GracefulShutdown", "ForceRestart", "Nmi"]
                }}
            }),
        ),
        (Method::POST, RESET) => {
            let new = match reset_type.as_deref() {
                Some("On") | Some("ForceRestart") => "On",
                Some("ForceOff") | Some("GracefulShutdown") => "Off",
                _ => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({"error": {"code": "Base.1.0.ActionParameterNotSupported"}}),
                    );
                }
            };
            b.power = new.into();
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Full::new(Bytes::new()))
                .expect("response")
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": {"code": "Base.1.0.ResourceMissingAtURI"}}),
        ),
    }
}
