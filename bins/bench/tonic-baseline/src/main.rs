//! The benchmark baseline: ChatService's broadcast written the way a tonic
//! user would write it: one `tokio::sync::broadcast` channel for the room, a
//! task per call forwarding what it receives into the channel, and each
//! call's response stream reading from its own receiver. Only what
//! `chat-bench` needs (JoinChat broadcast; JoinChatRoom answers with the
//! room) is implemented.

use std::net::SocketAddr;
use std::pin::Pin;

use chat_proto::chat_service_server::{ChatService, ChatServiceServer};
use chat_proto::{ChatMessage, ChatRoom, HistoryPage, HistoryRequest, User};
use clap::Parser;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// Serve the tonic baseline.
#[derive(Parser, Debug)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50052")]
    addr: SocketAddr,
    /// Messages a slow receiver may fall behind before it loses some.
    #[arg(long, default_value_t = 65536)]
    capacity: usize,
}

type Out<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

struct Chat {
    room: broadcast::Sender<ChatMessage>,
}

#[tonic::async_trait]
impl ChatService for Chat {
    type JoinChatStream = Out<ChatMessage>;
    type JoinChatRoomStream = Out<ChatRoom>;

    async fn join_chat(
        &self,
        request: Request<Streaming<ChatMessage>>,
    ) -> Result<Response<Self::JoinChatStream>, Status> {
        let mut inbound = request.into_inner();
        let room = self.room.clone();
        let rx = room.subscribe();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = inbound.next().await {
                let _ = room.send(msg);
            }
        });
        let out = BroadcastStream::new(rx).filter_map(|m| m.ok().map(Ok));
        Ok(Response::new(Box::pin(out)))
    }

    async fn join_chat_room(
        &self,
        request: Request<Streaming<User>>,
    ) -> Result<Response<Self::JoinChatRoomStream>, Status> {
        let out = request.into_inner().map(|user| {
            user.map(|u| ChatRoom {
                room_id: "room1".into(),
                users: vec![u],
                history: Vec::new(),
                ..ChatRoom::default()
            })
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn history(
        &self,
        _request: Request<HistoryRequest>,
    ) -> Result<Response<HistoryPage>, Status> {
        Err(Status::unimplemented("the baseline keeps no history"))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (room, _) = broadcast::channel(args.capacity);
    println!("tonic-chat-server listening on {}", args.addr);
    // TCP_NODELAY on, as for our server: small messages must not wait.
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(ChatServiceServer::new(Chat { room }))
        .serve(args.addr)
        .await?;
    Ok(())
}
