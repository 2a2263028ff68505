package httpapi

import (
	"encoding/json"
	"net/http"

	"baimo/internal/apierr"
	"baimo/internal/gateway"
	"baimo/internal/provider/ir"
	"baimo/internal/tokenize"
	"baimo/internal/usage"
)

// maxTokenizeIDs bounds the token ids returned by /v1/tokenize.
const maxTokenizeIDs = 1 << 20

// TokenizeRequest is the body of POST /v1/tokenize.
type TokenizeRequest struct {
	Model     string          `json:"model"`
	Input     json.RawMessage `json:"input"`
	Messages  json.RawMessage `json:"messages"`
	ReturnIDs bool            `json:"return_ids"`
}

func (s *Server) tokenize(w http.ResponseWriter, r *http.Request) {
	if _, aerr := s.GW.Authenticate(r, ir.FormatOpenAI); aerr != nil {
		WriteOpenAIError(w, aerr)
		return
	}
	body, aerr := readLimited(w, r, 8<<20)
	if aerr != nil {
		WriteOpenAIError(w, aerr)
		return
	}
	var q TokenizeRequest
	if e := decodeJSON(body, &q, false); e != nil {
		WriteOpenAIError(w, e)
		return
	}
	if q.Model == "" {
		WriteOpenAIError(w, apierr.BadRequest("model", "You must provide a model parameter."))
		return
	}
	c, exact := tokenize.ForModel(q.Model)
	resp := map[string]any{"object": "tokenize", "model": q.Model, "tokenizer": c.Name(), "exact": exact}
	switch {
	case len(q.Messages) > 0:
		n, src := gateway.Tokenizer{}.CountBody(ir.FormatOpenAI, q.Model, body)
		resp["count"], resp["exact"] = n, src == usage.SourceCounted
		resp["framing"] = "chat template"
	case len(q.Input) > 0:
		var text string
		if err := json.Unmarshal(q.Input, &text); err != nil {
			WriteOpenAIError(w, apierr.BadRequest("input", "input must be a string (or send messages)."))
			return
		}
		resp["count"] = c.Count(text)
		resp["characters"] = len([]rune(text))
		if q.ReturnIDs {
			e, ok := c.(*tokenize.Encoding)
			if !ok {
				WriteOpenAIError(w, apierr.BadRequest("return_ids", "The tokenizer of %s is not public: only an estimated count is available.", q.Model))
				return
			}
			ids := e.Encode(nil, text)
			if len(ids) > maxTokenizeIDs {
				WriteOpenAIError(w, apierr.BadRequest("input", "The input has more than %d tokens.", maxTokenizeIDs))
				return
			}
			resp["ids"] = ids
		}
	default:
		WriteOpenAIError(w, apierr.BadRequest("input", "Give input (a string) or messages."))
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
