//! Connections and frames: the Kafka protocol's framing around [`crate::api`].
//!
//! A frame is a 4-byte big-endian length and that many bytes: a request header (API key,
//! version, correlation id, client id, tagged fields from the flexible versions on) and the
//! request. Each connection is served in order, one request at a time, as a Kafka broker
//! serves a connection (its answers must come back in request order anyway). A frame that
//! cannot be served (a length outside `8..=max_frame_bytes`, an API or version the gateway does
//! not offer, bytes that do not decode) closes that connection, with a log line naming the
//! peer and why; every other connection goes on. ApiVersions at a version the gateway does not
//! know is answered as Kafka answers it (`UNSUPPORTED_VERSION` and the version table, at v0),
//! so a client can retry at a version both know.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::api::{self, Gateway};

/// Kafka's default `socket.request.max.bytes`: the largest frame a connection may send.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Why a connection was closed by the gateway.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection or the socket failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// A frame length outside what a request can be.
    #[error("a frame of {0} bytes (a request is 8 to {1} bytes)")]
    Size(i64, usize),
    /// An API key Kafka does not define.
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    /// An API or version the gateway does not offer.
    #[error("{0:?} v{1} is not offered (see ApiVersions)")]
    Unsupported(ApiKey, i16),
    /// A request that does not decode at its version.
    #[error("{0:?} v{1} does not decode: {2}")]
    Malformed(ApiKey, i16, String),
    /// An answer that does not encode at its version: a bug of the gateway.
    #[error("the answer to {0:?} v{1} does not encode: {2}")]
    Encode(ApiKey, i16, String),
}

/// Accepts connections for ever, one task each.
pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>, max_frame_bytes: usize) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let gateway = Arc::clone(&gateway);
        tokio::spawn(async move {
            tracing::debug!(%peer, "connection opened");
            match connection(stream, &gateway, max_frame_bytes).await {
                Ok(()) => tracing::debug!(%peer, "connection closed by the client"),
                Err(FrameError::Io(error)) => tracing::debug!(%peer, %error, "connection ended"),
                Err(error) => tracing::warn!(%peer, %error, "connection closed by the gateway"),
            }
        });
    }
}

/// Serves one connection until the client closes it or sends a frame that cannot be served.
pub async fn connection(
    stream: TcpStream,
    gateway: &Gateway,
    max_frame_bytes: usize,
) -> Result<(), FrameError> {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(64 * 1024, read);
    loop {
        let size = match read.read_i32().await {
            Ok(size) => size,
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        if size < 8 || size as usize > max_frame_bytes {
            return Err(FrameError::Size(i64::from(size), max_frame_bytes));
        }
        let mut frame = BytesMut::zeroed(size as usize);
        read.read_exact(&mut frame).await?;
        if let Some(answer) = serve_frame(frame.freeze(), gateway).await? {
            write.write_all(&answer).await?;
        }
    }
}

/// One request frame (without its length) to the answer frame (with its length), or `None`
/// when the request gets no answer (a produce with `acks=0`).
pub async fn serve_frame(mut frame: Bytes, gateway: &Gateway) -> Result<Option<Bytes>, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::Size(frame.len() as i64, frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let key = ApiKey::try_from(raw_key).map_err(|_| FrameError::UnknownApi(raw_key))?;
    let offered = api::offered(key).ok_or(FrameError::Unsupported(key, version))?;
    if key == ApiKey::ApiVersions && !(offered.0..=offered.1).contains(&version) {
        // Kafka's answer to a newer ApiVersions than it knows: v0, with the table.
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let answer = api::unsupported_api_versions();
        return encode_answer(key, 0, 0, correlation_id, &answer).map(Some);
    }
    if !(offered.0..=offered.1).contains(&version) {
        return Err(FrameError::Unsupported(key, version));
    }
    let header: RequestHeader = decode(
        key,
        version,
        key.request_header_version(version),
        &mut frame,
    )?;
    let request = api::Request::decode(key, version, &mut frame)?;
    if frame.has_remaining() {
        // Kafka's broker parses the request and ignores what follows it; librdkafka 2.16 sends
        // an all-topics Metadata v12 with 3 bytes too many (design/gateway.md).
        tracing::debug!(api = ?key, version, bytes = frame.remaining(), "bytes after the request ignored");
    }
    let client = header
        .client_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let span = tracing::debug_span!("request", api = ?key, version, correlation = header.correlation_id, client);
    let _enter = span.enter();
    let Some(answer) = gateway.serve(request, version).await else {
        return Ok(None);
    };
    let header_version = key.response_header_version(version);
    answer
        .encode_frame(key, version, header_version, header.correlation_id)
        .map(Some)
}

/// Decodes one value with the `kafka-protocol` crate, turning its errors and its panics (a
/// declared length whose size overflows; see [`crate::alloc`]) into [`FrameError::Malformed`].
pub fn decode<T: Decodable>(
    key: ApiKey,
    version: i16,
    decode_version: i16,
    buf: &mut Bytes,
) -> Result<T, FrameError> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| T::decode(buf, decode_version))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(FrameError::Malformed(key, version, error.to_string())),
        Err(_) => Err(FrameError::Malformed(
            key,
            version,
            "a declared length larger than memory".into(),
        )),
    }
}

/// A whole answer frame: length, response header, body.
pub fn encode_answer<T: Encodable>(
    key: ApiKey,
    version: i16,
    header_version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, FrameError> {
    let fail = |e: anyhow::Error| FrameError::Encode(key, version, e.to_string());
    let mut out = BytesMut::with_capacity(256);
    out.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut out, header_version).map_err(fail)?;
    body.encode(&mut out, version).map_err(fail)?;
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(out.freeze())
}
