//! moq-dev's auth contract, driven from moq-dev's own `moq-auth` crate, so scripts/interop can
//! turn authorization on in moq-dev's relay without building its whole `moq` CLI (a media
//! toolchain): the server is `moq_auth::serve::Server`, what `moq auth serve --key` runs.
//!
//!   moq-dev-auth keygen KEY_FILE        a fresh HS256 key (JWK), written to KEY_FILE
//!   moq-dev-auth sign KEY_FILE          a JWT for root "" granting publish and subscribe
//!                                       everywhere for an hour, on stdout
//!   moq-dev-auth serve KEY_FILE         answer the relay's `--auth-url` on 127.0.0.1 (an
//!                                       ephemeral port, printed as `listening ADDR`)

use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use moq_auth::serve::{Keys, Policy, Server};
use moq_auth::{Algorithm, Claims, Key, Pattern};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, key_file] = args.as_slice() else {
        bail!("usage: moq-dev-auth keygen|sign|serve KEY_FILE");
    };
    match command.as_str() {
        "keygen" => {
            let key = Key::generate(Algorithm::HS256, None).context("generate a key")?;
            key.to_file(key_file).context("write the key")?;
        }
        "sign" => {
            let key = Key::from_file(key_file).context("read the key")?;
            let everything: Pattern = "**".parse().context("pattern")?;
            let claims = Claims::default()
                .with_root("")
                .with_publish([everything.clone()])
                .with_subscribe([everything])
                .with_expires(SystemTime::now() + Duration::from_secs(3600));
            println!("{}", key.sign(&claims).context("sign")?);
        }
        "serve" => {
            let mut policy = Policy::default();
            policy.keys = Some(Keys::File(key_file.into()));
            let server = Server::new(policy).context("the auth server")?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("listening {}", listener.local_addr()?);
            server.serve(listener).await?;
        }
        other => bail!("unknown command {other}: keygen, sign or serve"),
    }
    Ok(())
}
