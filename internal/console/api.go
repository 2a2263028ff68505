package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"baimo/internal/httpapi"
)

// apiError is an error answer of the admin API, as the console shows it.
type apiError struct {
	Status  int
	Code    string
	Param   string
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// response is an answer of the admin API captured in memory.
type response struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *response) Header() http.Header { return w.header }
func (w *response) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}
func (w *response) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

// call sends one request to the admin API in-process, as the admin, and
// decodes a JSON answer into out (if not nil). The path is the API's own
// (with its query), so every page's data comes from a documented route.
func (c *Console) call(r *http.Request, method, path string, in, out any, header ...string) *apiError {
	res, aerr := c.do(r, method, path, in, header...)
	if aerr != nil {
		return aerr
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(res.body.Bytes(), out); err != nil {
		c.logError(r, "decode "+method+" "+path, err)
		return &apiError{Status: http.StatusBadGateway, Code: "bad_answer", Message: "The admin API gave an answer the console could not read."}
	}
	return nil
}

// do sends the request and returns the raw answer when its status is 2xx.
func (c *Console) do(r *http.Request, method, path string, in any, header ...string) (*response, *apiError) {
	var body bytes.Buffer
	if in != nil {
		if err := json.NewEncoder(&body).Encode(in); err != nil {
			return nil, &apiError{Status: http.StatusBadRequest, Code: "bad_form", Message: err.Error()}
		}
	}
	req, err := http.NewRequestWithContext(httpapi.WithAdmin(r.Context()), method, path, &body)
	if err != nil {
		return nil, &apiError{Status: http.StatusBadRequest, Code: "bad_path", Message: err.Error()}
	}
	req.Host = r.Host
	req.RemoteAddr = r.RemoteAddr
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] != "" {
			req.Header.Set(header[i], header[i+1])
		}
	}
	res := &response{header: http.Header{}}
	c.api.ServeHTTP(res, req)
	if res.status >= 200 && res.status < 300 {
		return res, nil
	}
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Code    *string `json:"code"`
			Param   *string `json:"param"`
		} `json:"error"`
	}
	ae := &apiError{Status: res.status, Message: http.StatusText(res.status)}
	if json.Unmarshal(res.body.Bytes(), &e) == nil && e.Error.Message != "" {
		ae.Message = e.Error.Message
		if e.Error.Code != nil {
			ae.Code = *e.Error.Code
		}
		if e.Error.Param != nil {
			ae.Param = *e.Error.Param
		}
	}
	return nil, ae
}

// apiPath joins a path and a query.
func apiPath(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
