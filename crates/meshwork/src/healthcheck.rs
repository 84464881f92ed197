//! `meshwork healthcheck`: whether the component on this host is ready, as
//! an exit code, for a container's HEALTHCHECK and docker-compose's
//! `service_healthy` (the image has no curl). A plain HTTP/1.1 GET of
//! `/health/ready` on 127.0.0.1: nothing to set up, no runtime to start.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// How long the whole check may take: a process that slow is not healthy.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Ok if `GET path` on `port` answers 200; otherwise why not.
pub fn check(port: u16, path: &str) -> Result<(), String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream =
        TcpStream::connect_timeout(&address, TIMEOUT).map_err(|e| format!("cannot connect to {address}: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| format!("cannot send to {address}: {e}"))?;
    // The status line is all that is read; the answer is small anyway.
    let mut head = [0; 64];
    let read = stream.read(&mut head).map_err(|e| format!("no answer from {address}: {e}"))?;
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status_line = status_line.lines().next().unwrap_or_default();
    match status_line.split(' ').nth(1) {
        Some("200") => Ok(()),
        Some(code) => Err(format!("{path} on {address} answered {code}")),
        None => Err(format!("{path} on {address} answered no HTTP status: {status_line:?}")),
    }
}
