//! The tray's control endpoint, as the window process uses it: one request per call.

use std::path::PathBuf;

use postern_engine::control::client::{self, Connection, ControlError};
use postern_engine::control::{Request, Response, endpoint_path};

#[derive(Debug, Clone)]
pub struct Remote {
    pub config_path: PathBuf,
    endpoint: PathBuf,
}

impl Remote {
    pub fn new(config_path: PathBuf, endpoint: Option<PathBuf>) -> Remote {
        let endpoint = endpoint.unwrap_or_else(|| endpoint_path(&config_path));
        Remote {
            config_path,
            endpoint,
        }
    }

    /// Sends `request`; a stream's replies follow on the connection.
    pub async fn open(&self, request: Request) -> Result<Connection, String> {
        client::request(&self.endpoint, request)
            .await
            .map_err(|e| match e {
                ControlError::NotRunning(_) => {
                    "Postern is not running: start it (the tray app postern) and try again"
                        .to_string()
                }
                other => other.to_string(),
            })
    }

    /// Sends `request` and returns its one reply; an error reply is the error.
    pub async fn call(&self, request: Request) -> Result<Response, String> {
        self.open(request)
            .await?
            .reply()
            .await
            .map_err(|e| e.to_string())
    }
}
