package httpapi

import (
	"net/http"
	"strings"

	"baimo/internal/apierr"
	"baimo/internal/gateway"
	"baimo/internal/provider/ir"
)

// gemini serves POST /v1beta/models/{model}:{method}. ServeMux cannot match
// a ":" inside a segment, so the route takes the rest of the path and splits
// it here. The key comes in x-goog-api-key or ?key= (or Authorization:
// Bearer).
func (s *Server) gemini(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("rest")
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 || strings.Contains(rest[:i], "/") {
		WriteGeminiError(w, apierr.NotFound("Unknown request URL: "+r.Method+" "+r.URL.Path+". Use /v1beta/models/{model}:generateContent."))
		return
	}
	in := gateway.Inbound{Format: ir.FormatGemini, Endpoint: gateway.GenerateContent, Model: rest[:i]}
	switch rest[i+1:] {
	case "generateContent":
		if e := s.GW.Serve(w, r, in); e != nil {
			WriteGeminiError(w, e)
		}
	case "streamGenerateContent":
		if alt := r.URL.Query().Get("alt"); alt != "sse" {
			WriteGeminiError(w, apierr.BadRequest("alt", "streamGenerateContent is served as server-sent events only: add ?alt=sse."))
			return
		}
		in.Stream = true
		if e := s.GW.Serve(w, r, in); e != nil {
			WriteGeminiError(w, e)
		}
	case "countTokens":
		if e := s.GW.ServeCountTokens(w, r, in); e != nil {
			WriteGeminiError(w, e)
		}
	default:
		WriteGeminiError(w, apierr.NotFound("Method "+rest[i+1:]+" is not served; use generateContent, streamGenerateContent or countTokens."))
	}
}

// WriteGeminiError writes e in Google's error shape:
// {"error":{"code":400,"message":"...","status":"INVALID_ARGUMENT"}}.
func WriteGeminiError(w http.ResponseWriter, e *apierr.Error) { writeError(w, ir.FormatGemini, e) }
