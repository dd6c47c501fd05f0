//! gRPC server reflection (`grpc.reflection.v1` and `v1alpha`, the same
//! messages on two paths), which the [`Server`](super::Server) answers itself
//! from an encoded `FileDescriptorSet` (grpc/grpc
//! src/proto/grpc/reflection/v1/reflection.proto and doc/server-reflection.md,
//! answering as grpc-go's reflection/internal/internal.go does), so
//! grpcurl, grpcui, Postman and the like work without the proto files:
//!
//! - `list_services`: the services the server runs, health and reflection
//!   included;
//! - `file_by_filename` and `file_containing_symbol` (packages' services,
//!   methods, messages, enums and nested types, by full name): the file and
//!   the files it imports, each sent at most once per stream (the requested
//!   one always);
//! - `file_containing_extension`: NOT_FOUND, as proto3 files declare none;
//!   `all_extension_numbers_of_type`: an empty list for a known message;
//! - anything unknown: an `error_response` with NOT_FOUND, the stream
//!   staying open; a request with nothing set ends the call with
//!   INVALID_ARGUMENT; the client's half-close ends it with OK.

use std::collections::{BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use chat_proto::reflection::server_reflection_request::MessageRequest;
use chat_proto::reflection::server_reflection_response::MessageResponse;
use chat_proto::reflection::{
    paths, ErrorResponse, ExtensionNumberResponse, FileDescriptorResponse, ListServiceResponse,
    ServerReflectionRequest, ServerReflectionResponse, ServiceResponse,
};
use prost::Message as _;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

use crate::idmap::IdMap;
use crate::status::{malformed, unimplemented, Code, Status};

use super::handler::Outbox;
use super::ids::CallId;

/// One described file.
#[derive(Debug)]
struct File {
    /// The encoded `FileDescriptorProto`.
    bytes: Bytes,
    /// Indexes of the files it imports.
    imports: Vec<usize>,
}

/// The descriptors, their index, and the streams in progress.
#[derive(Debug)]
pub(crate) struct Reflection {
    files: Vec<File>,
    by_name: HashMap<String, usize>,
    /// Full symbol name (no leading dot) to its file.
    symbols: HashMap<String, usize>,
    messages: HashSet<String>,
    services: BTreeSet<String>,
    /// Per open stream, the files it has been sent.
    streams: IdMap<CallId, HashSet<usize>>,
}

/// Whether `path` is a method of either reflection service.
pub(crate) fn is_reflection_path(path: &str) -> bool {
    [paths::SERVICE, paths::SERVICE_V1ALPHA].iter().any(|s| {
        path.strip_prefix('/')
            .and_then(|p| p.strip_prefix(s))
            .is_some_and(|rest| rest.starts_with('/'))
    })
}

impl Reflection {
    /// Describes the files of `set` (an encoded `FileDescriptorSet`) and
    /// lists `services` and itself.
    pub fn new(set: &[u8], services: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let set = FileDescriptorSet::decode(set)
            .map_err(|e| format!("the reflection descriptors do not decode: {e}"))?;
        let by_name: HashMap<String, usize> = set
            .file
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name().to_owned(), i))
            .collect();
        let mut r = Reflection {
            files: Vec::with_capacity(set.file.len()),
            by_name,
            symbols: HashMap::new(),
            messages: HashSet::new(),
            services: services.into_iter().collect(),
            streams: IdMap::default(),
        };
        r.services.insert(paths::SERVICE.to_owned());
        r.services.insert(paths::SERVICE_V1ALPHA.to_owned());
        for (i, file) in set.file.iter().enumerate() {
            let imports = file
                .dependency
                .iter()
                .map(|d| {
                    r.by_name.get(d).copied().ok_or_else(|| {
                        format!("{} imports {d}, which is not in the set", file.name())
                    })
                })
                .collect::<Result<_, _>>()?;
            r.index(i, file);
            r.files.push(File {
                bytes: file.encode_to_vec().into(),
                imports,
            });
        }
        Ok(r)
    }

    fn index(&mut self, i: usize, file: &FileDescriptorProto) {
        let prefix = match file.package() {
            "" => String::new(),
            p => {
                // The package itself resolves too (grpcurl describes them).
                self.symbols.entry(p.to_owned()).or_insert(i);
                format!("{p}.")
            }
        };
        for m in &file.message_type {
            self.index_message(i, &prefix, m);
        }
        for e in &file.enum_type {
            self.symbols.insert(format!("{prefix}{}", e.name()), i);
        }
        for s in &file.service {
            let name = format!("{prefix}{}", s.name());
            for m in &s.method {
                self.symbols.insert(format!("{name}.{}", m.name()), i);
            }
            self.symbols.insert(name, i);
        }
    }

    fn index_message(&mut self, i: usize, prefix: &str, m: &DescriptorProto) {
        let name = format!("{prefix}{}", m.name());
        let inner = format!("{name}.");
        for nested in &m.nested_type {
            self.index_message(i, &inner, nested);
        }
        for e in &m.enum_type {
            self.symbols.insert(format!("{inner}{}", e.name()), i);
        }
        self.messages.insert(name.clone());
        self.symbols.insert(name, i);
    }

    /// A new reflection stream.
    pub fn open(&mut self, call: CallId, path: &str) -> Result<(), Status> {
        if path != paths::INFO && path != paths::INFO_V1ALPHA {
            return Err(unimplemented(path));
        }
        self.streams.insert(call, HashSet::new());
        Ok(())
    }

    /// One request: one response, in order.
    pub fn message<E>(&mut self, call: CallId, msg: Bytes, out: &mut Outbox<'_, E>) {
        if !self.streams.contains_key(&call) {
            return;
        }
        let req = match ServerReflectionRequest::decode(msg) {
            Ok(r) => r,
            Err(e) => return self.finish(call, malformed("request", &e), out),
        };
        let Some(request) = req.message_request.clone() else {
            let status = Status::new(Code::InvalidArgument, "empty reflection request");
            return self.finish(call, status, out);
        };
        let answer = match request {
            MessageRequest::ListServices(_) => {
                MessageResponse::ListServicesResponse(ListServiceResponse {
                    service: self
                        .services
                        .iter()
                        .map(|name| ServiceResponse { name: name.clone() })
                        .collect(),
                })
            }
            MessageRequest::FileByFilename(name) => match self.by_name.get(&name) {
                Some(&i) => self.files_from(call, i),
                None => not_found(format!("unknown file {name}")),
            },
            MessageRequest::FileContainingSymbol(symbol) => {
                let symbol = symbol.strip_prefix('.').unwrap_or(&symbol);
                match self.symbols.get(symbol) {
                    Some(&i) => self.files_from(call, i),
                    None => not_found(format!("unknown symbol {symbol}")),
                }
            }
            MessageRequest::FileContainingExtension(ext) => not_found(format!(
                "no extension {} of {}",
                ext.extension_number, ext.containing_type
            )),
            MessageRequest::AllExtensionNumbersOfType(ty) => {
                let name = ty.strip_prefix('.').unwrap_or(&ty);
                if self.messages.contains(name) {
                    MessageResponse::AllExtensionNumbersResponse(ExtensionNumberResponse {
                        base_type_name: name.to_owned(),
                        extension_number: Vec::new(),
                    })
                } else {
                    not_found(format!("unknown message type {name}"))
                }
            }
        };
        out.send_message(
            call,
            &ServerReflectionResponse {
                valid_host: req.host.clone(),
                original_request: Some(req),
                message_response: Some(answer),
            },
        );
    }

    /// The client is done asking.
    pub fn half_close<E>(&mut self, call: CallId, out: &mut Outbox<'_, E>) {
        self.finish(call, Status::ok(), out);
    }

    /// The stream ended without the service finishing it.
    pub fn closed(&mut self, call: CallId) {
        self.streams.remove(&call);
    }

    /// File `root` and the files it imports, directly or not, that this
    /// stream has not been sent yet; `root` first, and always.
    fn files_from(&mut self, call: CallId, root: usize) -> MessageResponse {
        let sent = self.streams.entry(call).or_default();
        let mut order = vec![root];
        let mut seen = HashSet::from([root]);
        let mut i = 0;
        while let Some(&f) = order.get(i) {
            i += 1;
            for &dep in &self.files[f].imports {
                if !sent.contains(&dep) && seen.insert(dep) {
                    order.push(dep);
                }
            }
        }
        sent.extend(order.iter().copied());
        MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
            file_descriptor_proto: order
                .iter()
                .map(|&f| self.files[f].bytes.to_vec())
                .collect(),
        })
    }

    fn finish<E>(&mut self, call: CallId, status: Status, out: &mut Outbox<'_, E>) {
        self.streams.remove(&call);
        out.finish(call, status);
    }
}

fn not_found(message: String) -> MessageResponse {
    MessageResponse::ErrorResponse(ErrorResponse {
        error_code: Code::NotFound as i32,
        error_message: message,
    })
}
