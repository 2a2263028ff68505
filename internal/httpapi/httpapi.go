// Package httpapi maps HTTP routes to the gateway: the OpenAI-compatible /v1
// API, the admin API under /admin, health and metrics. It is the one place
// that writes errors in each API's format.
package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"baimo/internal/apierr"
	"baimo/internal/batch"
	"baimo/internal/clock"
	"baimo/internal/gateway"
	"baimo/internal/keys"
	"baimo/internal/provider"
	"baimo/internal/provider/ir"
	"baimo/internal/usage"
)

// Store is what the HTTP layer needs from storage.
type Store interface {
	keys.Store
	usage.Store
	Ping(ctx context.Context) error
}

// Server holds the handlers' dependencies.
type Server struct {
	GW    *gateway.Gateway
	Store Store
	// AdminKeyHash is the hash (keys.Hash) of the admin key.
	AdminKeyHash string
	Clock        clock.Clock
	Log          *slog.Logger
	Gatherer     prometheus.Gatherer
	// Prices serves the price catalog routes; nil leaves them out.
	Prices *Prices
	// Billing serves tenants, balances and statements; nil leaves them out.
	Billing *Billing
	// Ready reports whether the gateway should take traffic.
	Ready func() bool
	// RoutingEvents, if set, is told of the routing changes an operator
	// makes through the admin API, for the other nodes (admin.go).
	RoutingEvents RoutingRecorder
	// Console, if set, adds the web console's pages and routes.
	Console Console
	// Responses, if set, serves the Responses API with its stored
	// responses (package responsesapi); otherwise POST /v1/responses is
	// served statelessly.
	Responses Mounter
	// Batches, if set, serves the Files and Batches APIs (OpenAI's) and
	// Message Batches (Anthropic's), and /admin/batches.
	Batches *batch.Service
}

// Mounter registers its routes on a mux.
type Mounter interface{ Mount(mux *http.ServeMux) }

// Console is the web console (package console): it registers its pages and
// JSON routes on the mux that also serves the admin API, which it calls
// in-process.
type Console interface {
	Mount(mux *http.ServeMux, admin func(http.HandlerFunc) http.HandlerFunc, writeErr func(http.ResponseWriter, *apierr.Error))
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.serve(gateway.Inbound{Format: ir.FormatOpenAI, Endpoint: gateway.Chat}))
	mux.HandleFunc("POST /v1/completions", s.serve(gateway.Inbound{Format: ir.FormatOpenAI, Endpoint: gateway.Completions}))
	mux.HandleFunc("POST /v1/embeddings", s.serve(gateway.Inbound{Format: ir.FormatOpenAI, Endpoint: gateway.Embeddings}))
	for path, e := range map[string]gateway.Endpoint{"/v1/rerank": gateway.Rerank, "/v1/images/generations": gateway.Images,
		"/v1/images/edits": gateway.ImageEdits, "/v1/audio/transcriptions": gateway.Transcriptions,
		"/v1/audio/translations": gateway.Translations, "/v1/audio/speech": gateway.Speech} {
		mux.HandleFunc("POST "+path, s.serve(gateway.Inbound{Format: ir.FormatOpenAI, Endpoint: e}))
	}
	if s.Responses != nil {
		s.Responses.Mount(mux)
	} else {
		mux.HandleFunc("POST /v1/responses", s.serve(gateway.Inbound{Format: ir.FormatResponses, Endpoint: gateway.Responses}))
	}
	mux.HandleFunc("POST /v1/messages", s.messages)
	mux.HandleFunc("POST /v1/messages/count_tokens", s.countMessageTokens)
	mux.HandleFunc("POST /v1beta/models/{rest...}", s.gemini)
	mux.HandleFunc("GET /v1beta/models", s.listGeminiModels)
	mux.HandleFunc("GET /v1beta/models/{rest...}", s.getGeminiModel)
	mux.HandleFunc("/v1beta/", func(w http.ResponseWriter, r *http.Request) {
		WriteGeminiError(w, apierr.NotFound("Unknown request URL: "+r.Method+" "+r.URL.Path+"."))
	})
	mux.HandleFunc("GET /v1/models", byClient(s.listModels, s.listAnthropicModels))
	mux.HandleFunc("POST /v1/tokenize", s.tokenize)
	mux.HandleFunc("GET /v1/models/{model...}", byClient(s.getModel, s.getAnthropicModel))
	s.pricesRoutes(mux)
	s.batchRoutes(mux)
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		WriteOpenAIError(w, apierr.NotFound("Unknown request URL: "+r.Method+" "+r.URL.Path+"."))
	})

	mux.HandleFunc("POST /admin/keys", s.admin(s.createKey))
	mux.HandleFunc("GET /admin/keys", s.admin(s.listKeys))
	mux.HandleFunc("DELETE /admin/keys/{id}", s.admin(s.deleteKey))
	mux.HandleFunc("POST /admin/keys/{id}/disable", s.admin(s.setDisabled(true)))
	mux.HandleFunc("POST /admin/keys/{id}/enable", s.admin(s.setDisabled(false)))
	mux.HandleFunc("GET /admin/usage", s.admin(s.listUsage))
	s.billingRoutes(mux)
	mux.HandleFunc("GET /admin/routing", s.admin(s.routingState))
	mux.HandleFunc("GET /admin/audit/vendors", s.admin(s.vendorAudit))
	mux.HandleFunc("POST /admin/routing/channels/{channel}/keys/{key}/unpark", s.admin(s.unpark))
	mux.HandleFunc("POST /admin/routing/channels/{channel}/reset", s.admin(s.resetChannel))
	mux.HandleFunc("POST /admin/routing/channels/{channel}/probe", s.admin(s.probeChannel))
	mux.HandleFunc("/admin/", s.admin(func(w http.ResponseWriter, r *http.Request) {
		WriteOpenAIError(w, apierr.NotFound("Unknown admin URL: "+r.Method+" "+r.URL.Path+"."))
	}))

	if s.Console != nil {
		s.Console.Mount(mux, s.admin, WriteOpenAIError)
	}

	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if s.Ready != nil && !s.Ready() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	if err := s.Store.Ping(ctx); err != nil {
		s.Log.Error("readyz: store", "err", err)
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ready\n"))
}

// serve serves the requests of one inbound API, writing an error the
// gateway returns in that API's format.
func (s *Server) serve(in gateway.Inbound) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if e := s.GW.Serve(w, r, in); e != nil {
			writeError(w, in.Format, e)
		}
	}
}

// writeError writes e in format f's error shape (provider.ErrorBody, the one
// writer of client errors), with Retry-After when e has one.
func writeError(w http.ResponseWriter, f ir.Format, e *apierr.Error) { provider.WriteError(w, f, e) }

// WriteOpenAIError writes e in OpenAI's error shape.
func WriteOpenAIError(w http.ResponseWriter, e *apierr.Error) { writeError(w, ir.FormatOpenAI, e) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"encoding failed","type":"api_error","param":null,"code":null}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	k, aerr := s.GW.Authenticate(r, ir.FormatOpenAI)
	if aerr != nil {
		WriteOpenAIError(w, aerr)
		return
	}
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	data := []model{}
	for _, m := range s.GW.Models() {
		if k.Allows(m) {
			data = append(data, model{ID: m, Object: "model", Created: 1700000000, OwnedBy: "baimo"})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) {
	k, aerr := s.GW.Authenticate(r, ir.FormatOpenAI)
	if aerr != nil {
		WriteOpenAIError(w, aerr)
		return
	}
	id := r.PathValue("model")
	for _, m := range s.GW.Models() {
		if m == id && k.Allows(m) {
			writeJSON(w, http.StatusOK, map[string]any{"id": m, "object": "model", "created": 1700000000, "owned_by": "baimo"})
			return
		}
	}
	WriteOpenAIError(w, apierr.ModelNotFound(id))
}
