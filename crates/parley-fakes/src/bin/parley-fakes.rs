//! Fake APNs (h2c) and FCM (+ OAuth2 token endpoint) servers for local runs.
//!
//! ```sh
//! cargo run -p parley-fakes --bin parley-fakes -- --apns-listen 127.0.0.1:8443 --fcm-listen 127.0.0.1:8444
//! PARLEY_APNS_URL=http://127.0.0.1:8443 PARLEY_APNS_SANDBOX_URL=http://127.0.0.1:8443 \
//!   PARLEY_FCM_URL=http://127.0.0.1:8444 PARLEY_FCM_TOKEN_URI_ALLOW=http://127.0.0.1:8444 parley-server …
//! ```
//!
//! Every request is printed. Scripting and admin endpoints: see the `parley_fakes` library.

use std::net::SocketAddr;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Fake APNs and FCM servers for Parley tests")]
struct Args {
    /// Address of the fake APNs (HTTP/2 cleartext, prior knowledge).
    #[arg(long, default_value = "127.0.0.1:8443")]
    apns_listen: SocketAddr,
    /// Address of the fake FCM and its OAuth2 token endpoint (`/token`).
    #[arg(long, default_value = "127.0.0.1:8444")]
    fcm_listen: SocketAddr,
    /// Also run a webhook receiver (200 to every call, `GET /_sink/count`) on this address.
    #[arg(long)]
    webhook_sink_listen: Option<SocketAddr>,
    /// Do not print requests.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let (apns, _) = parley_fakes::spawn_apns(args.apns_listen, !args.quiet).await?;
    let (fcm, _) = parley_fakes::spawn_fcm(args.fcm_listen, !args.quiet).await?;
    println!("fake APNs: http://{apns}  (PARLEY_APNS_URL / PARLEY_APNS_SANDBOX_URL)");
    println!(
        "fake FCM:  http://{fcm}  (PARLEY_FCM_URL and PARLEY_FCM_TOKEN_URI_ALLOW; service-account token_uri http://{fcm}/token)"
    );
    if let Some(addr) = args.webhook_sink_listen {
        let (sink, _) = parley_fakes::spawn_webhook_sink(addr).await?;
        println!("webhook sink: http://{sink}  (GET /_sink/count)");
    }
    println!("admin: GET|DELETE /_fake/requests, GET|POST /_fake/mode on either; Ctrl-C stops");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
