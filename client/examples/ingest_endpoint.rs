//! An idempotent HTTP ingestion endpoint: devices and webhooks POST events here and retry as
//! they like; each event batch is written exactly once.
//!
//! ```text
//! kafdo topics create events --partitions 4
//! cargo run -p kafdo-client --example ingest_endpoint -- http://127.0.0.1:8787 127.0.0.1:3000
//! curl -X POST 127.0.0.1:3000/events -H 'Idempotency-Key: device-7-batch-42' --data-binary $'a\nb\n'
//! curl -X POST 127.0.0.1:3000/events -H 'Idempotency-Key: device-7-batch-42' --data-binary $'a\nb\n'
//! # the same offsets twice; the records exist once
//! ```
//!
//! The endpoint forwards the sender's `Idempotency-Key` to Kafdo's topic produce, which answers
//! a repeated key with the first answer and writes nothing new, across restarts of either side.
//! With the key, the SDK itself also retries timeouts safely. A request without a key is
//! refused: without it a retry could duplicate.
//!
//! The HTTP handling is deliberately minimal (one request per connection, `Content-Length`
//! bodies): the point is the idempotence, not the server.

use kafdo_client::{Client, Error, ProduceRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8787".into());
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());
    let client = Client::connect(&url).expect("a valid Kafdo URL");
    let listener = TcpListener::bind(&listen).await?;
    eprintln!("listening on http://{listen}/{{topic}}");
    loop {
        let (stream, _) = listener.accept().await?;
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(stream, client).await {
                eprintln!("connection: {e}");
            }
        });
    }
}

async fn serve(mut stream: TcpStream, client: Client) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return respond(&mut stream, 431, "{\"error\":\"headers too large\"}").await;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut content_length = 0usize;
    let mut key = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.trim().parse().unwrap_or(0),
                "idempotency-key" => key = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    if content_length > MAX_BODY_BYTES {
        return respond(&mut stream, 413, "{\"error\":\"body too large\"}").await;
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < content_length {
        let mut chunk = vec![0u8; content_length - body.len()];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let topic = path.trim_start_matches('/');
    if method != "POST" || topic.is_empty() {
        return respond(&mut stream, 404, "{\"error\":\"POST /{topic}\"}").await;
    }
    let Some(key) = key else {
        return respond(
            &mut stream,
            400,
            "{\"error\":\"an Idempotency-Key header is required\"}",
        )
        .await;
    };
    let records: Vec<ProduceRecord> = body
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| ProduceRecord::value(line.to_vec()))
        .collect();
    match client.produce(topic, records, Some(&key)).await {
        Ok(answer) => {
            let offsets = serde_json::to_string(&answer).expect("JSON");
            respond(&mut stream, 200, &offsets).await
        }
        Err(e) => {
            let status = match &e {
                Error::Api { status, .. } => *status,
                _ => 503,
            };
            let body =
                serde_json::json!({"error": {"code": e.code().name(), "message": e.to_string()}});
            respond(&mut stream, status, &body.to_string()).await
        }
    }
}

async fn respond(stream: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        if status == 200 { "OK" } else { "Error" },
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
