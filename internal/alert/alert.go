// Package alert delivers operational alerts (budget thresholds crossed) to a
// webhook, off the request path: a bounded queue, a bounded number of
// retries, a timeout on every call. An alert that cannot be delivered is
// logged, never allowed to slow or stop billing.
package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
)

// Event is one alert as posted to the webhook.
type Event struct {
	Kind    string    `json:"kind"` // "budget_threshold"
	Scope   string    `json:"scope"`
	Subject string    `json:"subject"`
	Period  string    `json:"period"`
	Start   time.Time `json:"period_start"`
	Percent int       `json:"percent"`
	Spent   string    `json:"spent"`
	Limit   string    `json:"limit"`
	At      time.Time `json:"at"`
}

// BudgetEvent is the event for a budget threshold the ledger saw crossed
// at at.
func BudgetEvent(a ledger.BudgetAlert, at time.Time) Event {
	return Event{Kind: "budget_threshold", Scope: string(a.Budget.Scope), Subject: a.Budget.Subject,
		Period: string(a.Budget.Period), Start: a.Period, Percent: a.Percent, Spent: money.FormatNanos(a.Spent),
		Limit: money.FormatNanos(a.Budget.Limit), At: at.UTC()}
}

// Limits on delivery.
const (
	queueLen    = 1024
	maxTries    = 4
	callTimeout = 5 * time.Second
)

// Webhook posts events as JSON to a URL.
type Webhook struct {
	url    string
	client *http.Client
	log    *slog.Logger
	queue  chan Event
	done   chan struct{}
}

// NewWebhook starts a sender. Close stops it after the queued events.
func NewWebhook(url string, log *slog.Logger) *Webhook {
	w := &Webhook{url: url, client: &http.Client{Timeout: callTimeout}, log: log,
		queue: make(chan Event, queueLen), done: make(chan struct{})}
	go w.loop()
	return w
}

// Send queues e; when the queue is full the event is logged and dropped.
func (w *Webhook) Send(e Event) {
	select {
	case w.queue <- e:
	default:
		w.log.Error("alert queue full; alert not delivered", "kind", e.Kind, "subject", e.Subject, "percent", e.Percent)
	}
}

// Close delivers what is queued (each event within its retries) and stops.
func (w *Webhook) Close() {
	close(w.queue)
	<-w.done
}

func (w *Webhook) loop() {
	defer close(w.done)
	for e := range w.queue {
		body, _ := json.Marshal(e) // plain struct: cannot fail
		backoff := 200 * time.Millisecond
		for try := 1; ; try++ {
			err := w.post(body)
			if err == nil {
				break
			}
			if try == maxTries {
				w.log.Error("alert not delivered", "kind", e.Kind, "subject", e.Subject, "percent", e.Percent, "err", err)
				break
			}
			time.Sleep(backoff)
			backoff *= 2
		}
	}
}

func (w *Webhook) post(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return nil
}
