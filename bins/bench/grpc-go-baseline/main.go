// The benchmark's second baseline: ChatService's broadcast written the way
// a grpc-go user would write it: the room is a set of buffered channels
// under a mutex, each JoinChat call forwards what it receives to every
// channel from a goroutine of its own, and its handler sends what its own
// channel brings. Only what chat-bench needs is implemented (JoinChat
// broadcast, the sender included; JoinChatRoom answers with the room);
// History is left unimplemented. Built by build.sh beside this file.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"sync"

	"google.golang.org/grpc"

	pb "grpcchatbaseline/chatpb"
)

// room is every open JoinChat call's channel.
type room struct {
	mu   sync.Mutex
	subs map[chan *pb.ChatMessage]struct{}
}

func (r *room) join(capacity int) chan *pb.ChatMessage {
	ch := make(chan *pb.ChatMessage, capacity)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	return ch
}

func (r *room) leave(ch chan *pb.ChatMessage) {
	r.mu.Lock()
	delete(r.subs, ch)
	r.mu.Unlock()
}

// broadcast hands m to every member; a member whose channel is full loses
// it, as a lagging receiver of tonic's broadcast channel does.
func (r *room) broadcast(m *pb.ChatMessage) {
	r.mu.Lock()
	for ch := range r.subs {
		select {
		case ch <- m:
		default:
		}
	}
	r.mu.Unlock()
}

type chat struct {
	pb.UnimplementedChatServiceServer
	room     *room
	capacity int
}

func (c *chat) JoinChat(stream pb.ChatService_JoinChatServer) error {
	ch := c.room.join(c.capacity)
	defer c.room.leave(ch)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			c.room.broadcast(m)
		}
	}()
	ctx := stream.Context()
	for {
		select {
		case m := <-ch:
			if err := stream.Send(m); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *chat) JoinChatRoom(stream pb.ChatService_JoinChatRoomServer) error {
	for {
		u, err := stream.Recv()
		if err != nil {
			return nil
		}
		room := &pb.ChatRoom{RoomId: "room1", Users: []*pb.User{u}}
		if err := stream.Send(room); err != nil {
			return err
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:50053", "address to listen on")
	capacity := flag.Int("capacity", 65536, "messages a slow receiver may fall behind before it loses some")
	flag.Parse()
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Go's TCP connections have TCP_NODELAY on by default, as ours and the
	// tonic baseline set it.
	s := grpc.NewServer()
	pb.RegisterChatServiceServer(s, &chat{room: &room{subs: map[chan *pb.ChatMessage]struct{}{}}, capacity: *capacity})
	fmt.Printf("grpc-go-chat-server listening on %s\n", lis.Addr())
	if err := s.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
