//! The feed server's static files (`--www`): every one carries the dashboard's
//! Content-Security-Policy (only this origin, `'wasm-unsafe-eval'` for the
//! worker's wasm, no inline script or style) and the cross-origin isolation
//! headers; a missing file too. The browser side (no CSP violation while the
//! dashboard runs) is `www/tests/dashboard*.test.mjs`.
#![cfg(feature = "feed")]
#![cfg(not(target_arch = "wasm32"))]

use std::net::SocketAddr;

use meterflow::feed::{start, FeedConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path`: status and headers (lower-case names).
async fn head_of(addr: SocketAddr, path: &str) -> Result<(u16, Vec<(String, String)>), String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no header end")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status.ok_or("no status")?, headers))
}

fn value<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn static_files_carry_the_csp_and_isolation_headers() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("meterflow-static-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("assets")).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("index.html"), "<!doctype html><title>t</title>")
        .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("assets/app.js"), "export {};").map_err(|e| e.to_string())?;
    let cfg = FeedConfig { meters: 10, www: dir.clone(), ..FeedConfig::default() };
    let server =
        start(cfg, "127.0.0.1:0".parse().map_err(|_| "addr")?).await.map_err(|e| e.to_string())?;
    for (path, status) in
        [("/", 200), ("/index.html", 200), ("/assets/app.js", 200), ("/missing.js", 404)]
    {
        let (got, h) = head_of(server.addr, path).await?;
        assert_eq!(got, status, "{path}");
        let csp = value(&h, "content-security-policy").ok_or(format!("{path}: no CSP header"))?;
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        for d in [
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "style-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
        ] {
            assert!(directives.contains(&d), "{path}: CSP lacks `{d}`: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains('*'),
            "{path}: CSP too wide: {csp}"
        );
        assert_eq!(value(&h, "cross-origin-opener-policy"), Some("same-origin"), "{path}");
        assert_eq!(value(&h, "cross-origin-embedder-policy"), Some("require-corp"), "{path}");
        assert_eq!(value(&h, "cross-origin-resource-policy"), Some("same-origin"), "{path}");
        assert_eq!(value(&h, "x-content-type-options"), Some("nosniff"), "{path}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
