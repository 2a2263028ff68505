// Package conversation is the gateway-side state of OpenAI's Responses API:
// the responses it stored (each turn's input items and its answer), the
// account that served each one, and the replay of a conversation from a
// previous_response_id, so that stored conversations and background
// responses work on every channel kind, translated or not. It knows the
// Responses wire format's items and response object as JSON; it holds no
// HTTP and no SQL (the stores implement Store).
package conversation

import (
	"context"
	"errors"
	"time"
)

// Statuses of a response.
const (
	Queued     = "queued"
	InProgress = "in_progress"
	Completed  = "completed"
	Incomplete = "incomplete"
	Failed     = "failed"
	Cancelled  = "cancelled"
)

// Finished reports whether a response of status s is over.
func Finished(s string) bool { return s != Queued && s != InProgress }

// Response is one stored response: one turn of a conversation.
type Response struct {
	ID       string
	TenantID string // the tenant of the API key that made it
	KeyID    string // the API key that made it
	Model    string // the public model asked for
	// Channel and UpstreamKey (a route.Key ID) served it; a follow-up
	// must reach them. Empty until an upstream answered.
	Channel     string
	UpstreamKey string
	PreviousID  string // the response it continues, "" for none
	Status      string
	Background  bool
	RequestID   string // the gateway's request id: its usage record
	// Input is this turn's input items, a JSON array, as the client sent
	// them (a string input as one user message).
	Input []byte
	// Object is the response object (JSON) as last answered or retrieved:
	// its output items continue the conversation.
	Object    []byte
	CreatedAt time.Time
	UpdatedAt time.Time
	// CancelRequested is set by a cancel on any node; the node running the
	// background response stops it.
	CancelRequested bool
}

// ErrNotFound says no response has the id.
var ErrNotFound = errors.New("conversation: no such response")

// Store keeps responses. Implementations live under internal/store.
type Store interface {
	// PutResponse stores r, replacing a response with the same id.
	PutResponse(ctx context.Context, r *Response) error
	// Response returns the response with the id, or ErrNotFound.
	Response(ctx context.Context, id string) (Response, error)
	// DeleteResponse deletes the response with the id, or ErrNotFound.
	DeleteResponse(ctx context.Context, id string) error
	// RequestCancel marks the response for cancelling, or ErrNotFound.
	RequestCancel(ctx context.Context, id string) error
	// DeleteResponsesBefore deletes at most limit responses created before
	// t and returns how many it deleted.
	DeleteResponsesBefore(ctx context.Context, t time.Time, limit int) (int, error)
}

// Limits on what the store keeps and replays.
const (
	// MaxIDLen bounds a response id a client presents.
	MaxIDLen = 128
	// MaxChain bounds the turns replayed from a previous_response_id.
	MaxChain = 1000
)
