//! The one owner of the async runtime and the HTTP client: the S3 remote (through
//! `object_store`) and Stage 2's forwarding model proxy both run their requests here,
//! on one small tokio runtime made the first time either needs it.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The runtime: `block_on` it from any thread that is not one of its own workers.
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cto-ledger-net")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::Io {
        action: "start the network runtime",
        path: "tokio".into(),
        source: std::io::Error::other(e.clone()),
    })
}

/// The HTTP client of the model proxy: one connection pool for the whole process, no
/// automatic redirects (an admitted endpoint is one origin, not wherever it points).
pub(crate) fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    })
}
