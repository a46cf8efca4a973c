//! A lean gRPC client for the load generator: unary `ModelInfer` calls straight over an `h2`
//! connection, with the request message encoded once.
//!
//! The load generator shares the machine with the server it measures, so every µs it spends per
//! request is taken from the server. A tonic client re-encodes the request and decodes the response
//! on every call and passes each call through its tower stack (a buffer task, reconnection); here a
//! call is one HTTP/2 stream: the pre-encoded frame is sent (a reference-counted clone), the
//! response body is read and its `grpc-status` checked. The response message is decoded only when
//! asked to verify it. Tonic's generated client stays in use elsewhere (the gRPC job service tests,
//! `cerulean` itself); this one speaks only what the benchmark sends.

use std::net::SocketAddr;

use anyhow::{Context, bail, ensure};
use bytes::{BufMut, Bytes, BytesMut};
use cerulean_proto::inference::{ModelInferRequest, ModelInferResponse};
use h2::client::SendRequest;
use prost::Message;
use tokio::net::TcpStream;

/// The HTTP/2 path of `inference.GRPCInferenceService/ModelInfer`.
const MODEL_INFER_PATH: &str = "/inference.GRPCInferenceService/ModelInfer";

/// One HTTP/2 connection to a gRPC server; clones share it, as tonic channels do.
#[derive(Clone)]
pub struct GrpcConnection {
    sender: SendRequest<Bytes>,
    uri: http::Uri,
}

impl GrpcConnection {
    /// Connects to `addr` (with `TCP_NODELAY`) and starts the connection's driver task.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<GrpcConnection> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to gRPC at {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = h2::client::handshake(stream)
            .await
            .with_context(|| format!("HTTP/2 handshake with {addr}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(GrpcConnection {
            sender,
            uri: format!("http://{addr}{MODEL_INFER_PATH}").parse()?,
        })
    }

    /// Sends one `ModelInfer` call whose message is `frame` (from [`encode_frame`]) and reads the
    /// answer. Returns the response message when `decode` is set; otherwise only checks the status.
    pub async fn model_infer(
        &self,
        frame: &Bytes,
        decode: bool,
    ) -> anyhow::Result<Option<ModelInferResponse>> {
        let request = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .body(())?;
        let mut sender = self.sender.clone().ready().await?;
        let (response, mut stream) = sender.send_request(request, false)?;
        stream.send_data(frame.clone(), true)?;
        let response = response.await?;
        let status = response.status();
        let headers_status = grpc_status(response.headers());
        let mut body = response.into_body();
        let mut message = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            body.flow_control().release_capacity(chunk.len())?;
            message.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await?;
        ensure!(status == http::StatusCode::OK, "HTTP/2 status {status}");
        // A call that fails at once answers with its status in the headers ("trailers-only").
        let (code, text) = trailers
            .as_ref()
            .map(grpc_status)
            .filter(|(code, _)| code.is_some())
            .unwrap_or(headers_status);
        match code {
            Some(0) => {}
            Some(code) => bail!("gRPC status {code}: {text}"),
            None => bail!("the response carries no grpc-status"),
        }
        if !decode {
            return Ok(None);
        }
        let message = message.freeze();
        ensure!(
            message.len() >= 5 && message[0] == 0,
            "the response is not one uncompressed gRPC message"
        );
        let length = u32::from_be_bytes([message[1], message[2], message[3], message[4]]) as usize;
        ensure!(
            message.len() == 5 + length,
            "the gRPC message length does not match the body"
        );
        Ok(Some(ModelInferResponse::decode(message.slice(5..))?))
    }
}

/// A request message as one uncompressed gRPC frame: a zero flag byte, the big-endian length and
/// the protobuf encoding.
pub fn encode_frame(request: &ModelInferRequest) -> Bytes {
    let length = request.encoded_len();
    let mut frame = BytesMut::with_capacity(5 + length);
    frame.put_u8(0);
    frame.put_u32(length as u32);
    request.encode_raw(&mut frame);
    frame.freeze()
}

/// The `grpc-status` code and `grpc-message` of a header map, when present.
fn grpc_status(headers: &http::HeaderMap) -> (Option<u32>, String) {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let text = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (code, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cerulean_proto::inference::model_infer_request::InferInputTensor;

    #[test]
    fn frames_carry_the_length_and_the_message() {
        let request = ModelInferRequest {
            model_name: "m".into(),
            inputs: vec![InferInputTensor {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![1, 2],
                ..Default::default()
            }],
            raw_input_contents: vec![Bytes::from_static(&[0; 8])],
            ..Default::default()
        };
        let frame = encode_frame(&request);
        assert_eq!(frame[0], 0);
        let length = u32::from_be_bytes(frame[1..5].try_into().unwrap()) as usize;
        assert_eq!(length, frame.len() - 5);
        assert_eq!(ModelInferRequest::decode(&frame[5..]).unwrap(), request);
    }

    #[test]
    fn statuses_are_read_from_headers() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(grpc_status(&headers), (None, String::new()));
        headers.insert("grpc-status", "5".parse().unwrap());
        headers.insert("grpc-message", "unknown model".parse().unwrap());
        assert_eq!(grpc_status(&headers), (Some(5), "unknown model".into()));
    }
}
