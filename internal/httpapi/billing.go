package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/billing"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/usage"
)

// Billing serves the tenant, balance, money and statement routes of the
// admin API.
type Billing struct {
	Ledger *ledger.Ledger
	Store  ledger.Store
	// AuditGrace is how long past its expiry a hold may stay open before the
	// audit calls it a problem (the sweep interval).
	AuditGrace time.Duration
}

func (s *Server) billingRoutes(mux *http.ServeMux) {
	if s.Billing == nil {
		return
	}
	mux.HandleFunc("POST /admin/tenants", s.admin(s.createTenant))
	mux.HandleFunc("GET /admin/tenants", s.admin(s.listTenants))
	mux.HandleFunc("GET /admin/tenants/{id}/balance", s.admin(s.tenantBalance))
	mux.HandleFunc("POST /admin/tenants/{id}/topup", s.admin(s.moneyOp("topup")))
	mux.HandleFunc("POST /admin/tenants/{id}/adjust", s.admin(s.moneyOp("adjust")))
	mux.HandleFunc("POST /admin/tenants/{id}/refund", s.admin(s.moneyOp("refund")))
	mux.HandleFunc("POST /admin/tenants/{id}/redeem", s.admin(s.redeem))
	mux.HandleFunc("GET /admin/tenants/{id}/statement", s.admin(s.statement))
	mux.HandleFunc("POST /admin/codes", s.admin(s.createCode))
	mux.HandleFunc("GET /admin/audit", s.admin(s.audit))
	mux.HandleFunc("PUT /admin/budgets/{scope}/{subject}", s.admin(s.setBudget))
	mux.HandleFunc("GET /admin/budgets/{scope}/{subject}", s.admin(s.getBudget))
}

// ledgerError maps the ledger's sentinel errors to API errors.
func ledgerError(err error) *apierr.Error {
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return apierr.NotFound(err.Error())
	case errors.Is(err, ledger.ErrExists):
		return &apierr.Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "exists", Message: err.Error()}
	case errors.Is(err, ledger.ErrIdempotencyConflict):
		return &apierr.Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "idempotency_conflict",
			Message: "This Idempotency-Key was used with a different request body."}
	case errors.Is(err, ledger.ErrCodeUsed):
		return &apierr.Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "code_used", Message: "This code was already redeemed or has expired."}
	case errors.Is(err, ledger.ErrInsufficientFunds):
		return &apierr.Error{Status: http.StatusUnprocessableEntity, Type: "invalid_request_error", Code: "insufficient_funds", Message: err.Error()}
	case errors.Is(err, ledger.ErrInvalid):
		return apierr.BadRequest("", "%v", err)
	default:
		return apierr.Internal(err)
	}
}

type tenantView struct {
	ID          string     `json:"id"`
	Object      string     `json:"object"`
	Name        string     `json:"name"`
	Kind        string     `json:"kind"`
	Currency    string     `json:"currency"`
	CreditLimit string     `json:"credit_limit"`
	CreatedAt   *time.Time `json:"created_at"` // null when not known (a default tenant older than its creation time)
}

func viewTenant(t ledger.Tenant) tenantView {
	return tenantView{ID: t.ID, Object: "tenant", Name: t.Name, Kind: string(t.Kind), Currency: string(t.Currency),
		CreditLimit: money.FormatNanos(t.CreditLimit), CreatedAt: knownTime(t.CreatedAt)}
}

// knownTime is t, or nil for the zero time: the admin API writes null
// rather than 0001-01-01T00:00:00Z.
func knownTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func viewBalance(b ledger.Balance) map[string]any {
	return map[string]any{"object": "balance", "tenant_id": b.TenantID, "kind": b.Kind, "currency": b.Currency,
		"credit_limit": money.FormatNanos(b.CreditLimit), "posted": money.FormatNanos(b.Posted),
		"pending": money.FormatNanos(b.Pending), "available": money.FormatNanos(b.Available), "debt": money.FormatNanos(b.Debt),
		// A postpaid tenant's available balance goes below zero as it
		// spends on credit: say so, and what is left.
		"spendable": money.FormatNanos(b.Spendable()), "credit_used": money.FormatNanos(b.CreditUsed()),
		"available_note": knownString(b.AvailableNote())}
}

// knownString is s, or nil for "": the admin API writes null.
func knownString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func parseAmount(s, field string) (int64, *apierr.Error) {
	if s == "" {
		return 0, apierr.BadRequest(field, "%s is required, as a decimal string such as \"10.5\".", field)
	}
	n, err := money.ParseNanos(s)
	if err != nil {
		return 0, apierr.BadRequest(field, "%s: %v", field, err)
	}
	return n, nil
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		Kind        string `json:"kind"`
		Currency    string `json:"currency"`
		CreditLimit string `json:"credit_limit"`
	}
	if e := decodeAdmin(w, r, &req); e != nil {
		WriteOpenAIError(w, e)
		return
	}
	t := ledger.Tenant{ID: req.ID, Name: req.Name, Kind: ledger.Kind(req.Kind), Currency: money.Currency(strings.ToUpper(req.Currency))}
	if req.CreditLimit != "" {
		n, e := parseAmount(req.CreditLimit, "credit_limit")
		if e != nil {
			WriteOpenAIError(w, e)
			return
		}
		t.CreditLimit = n
	}
	t, err := s.Billing.Ledger.CreateTenant(r.Context(), t)
	if err != nil {
		WriteOpenAIError(w, ledgerError(err))
		return
	}
	writeJSON(w, http.StatusCreated, viewTenant(t))
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := s.Billing.Ledger.Tenants(r.Context())
	if err != nil {
		WriteOpenAIError(w, ledgerError(err))
		return
	}
	data := make([]tenantView, 0, len(ts))
	for _, t := range ts {
		data = append(data, viewTenant(t))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (s *Server) tenantBalance(w http.ResponseWriter, r *http.Request) {
	b, err := s.Billing.Ledger.Balance(r.Context(), r.PathValue("id"))
	if err != nil {
		WriteOpenAIError(w, ledgerError(err))
		return
	}
	writeJSON(w, http.StatusOK, viewBalance(b))
}

func (s *Server) moneyOp(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Amount    string `json:"amount"`
			Note      string `json:"note"`
			RequestID string `json:"request_id"`
		}
		if e := decodeAdmin(w, r, &req); e != nil {
			WriteOpenAIError(w, e)
			return
		}
		n, e := parseAmount(req.Amount, "amount")
		if e != nil {
			WriteOpenAIError(w, e)
			return
		}
		mr := ledger.MoneyRequest{TenantID: r.PathValue("id"), Amount: n, Note: req.Note, RequestID: req.RequestID,
			IdempotencyKey: r.Header.Get("Idempotency-Key")}
		var res ledger.MoneyResult
		var err error
		switch op {
		case "topup":
			res, err = s.Billing.Ledger.TopUp(r.Context(), mr)
		case "adjust":
			res, err = s.Billing.Ledger.Adjust(r.Context(), mr)
		default:
			res, err = s.Billing.Ledger.Refund(r.Context(), mr)
		}
		if err != nil {
			WriteOpenAIError(w, ledgerError(err))
			return
		}
		writeJSON(w, http.StatusOK, viewMoney(res))
	}
}

func viewMoney(res ledger.MoneyResult) map[string]any {
	return map[string]any{"object": "transfer", "transfer_id": res.TransferID, "tenant_id": res.TenantID, "kind": res.Kind,
		"amount": money.FormatNanos(res.Amount), "currency": res.Currency, "repaid_debt": money.FormatNanos(res.Repaid),
		"balance": viewBalance(res.Balance)}
}

func (s *Server) createCode(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Amount    string     `json:"amount"`
		Currency  string     `json:"currency"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	if e := decodeAdmin(w, r, &req); e != nil {
		WriteOpenAIError(w, e)
		return
	}
	n, e := parseAmount(req.Amount, "amount")
	if e != nil {
		WriteOpenAIError(w, e)
		return
	}
	var exp time.Time
	if req.ExpiresAt != nil {
		exp = *req.ExpiresAt
	}
	code, c, err := s.Billing.Ledger.CreateCode(r.Context(), money.Amount{Nanos: n, Currency: money.Currency(strings.ToUpper(req.Currency))}, exp)
	if err != nil {
		WriteOpenAIError(w, ledgerError(err))
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"object": "redemption_code", "code": code, "prefix": c.Prefix,
		"amount": money.FormatNanos(c.Amount), "currency": c.Currency, "expires_at": req.ExpiresAt})
}

func (s *Server) redeem(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Code string `json:"code"`
	}
	if e := decodeAdmin(w, r, &req); e != nil {
		WriteOpenAIError(w, e)
		return
	}
	res, err := s.Billing.Ledger.Redeem(r.Context(), r.PathValue("id"), req.Code, r.Header.Get("Idempotency-Key"))
	if err != nil {
		WriteOpenAIError(w, ledgerError(err))
		return
	}
	writeJSON(w, http.StatusOK, viewMoney(res))
}

func (s *Server) statement(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, e := parseTime(q.Get("from"), "from")
	if e != nil {
		WriteOpenAIError(w, e)
		return
	}
	to, e := parseTime(q.Get("to"), "to")
	if e != nil {
		WriteOpenAIError(w, e)
		return
	}
	if to.IsZero() {
		to = s.Clock.Now()
	}
	st, err := s.Billing.Ledger.Statement(r.Context(), r.PathValue("id"), from, to)
	if err != nil {
		WriteOpenAIError(w, ledgerError(err))
		return
	}
	if q.Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="statement-`+st.TenantID+`.csv"`)
		if err := st.WriteCSV(w); err != nil {
			s.Log.Error("write statement csv", "err", err)
		}
		return
	}
	if st.Lines == nil {
		st.Lines = []ledger.StatementLine{}
	}
	// From is null for a statement from the beginning.
	writeJSON(w, http.StatusOK, struct {
		ledger.Statement
		From *time.Time `json:"from"`
	}{st, knownTime(st.From)})
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	var rater *billing.Rater
	if s.Prices != nil {
		rater = s.Prices.Rater
	}
	var records usage.Store
	if s.Store != nil {
		records = s.Store
	}
	rep, err := billing.Audit(r.Context(), s.Billing.Store, records, rater, s.Clock.Now(), s.Billing.AuditGrace)
	if err != nil {
		WriteOpenAIError(w, apierr.Internal(err))
		return
	}
	status := http.StatusOK
	if !rep.OK {
		status = http.StatusConflict
	}
	writeJSON(w, status, rep)
}

func (s *Server) setBudget(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Period string `json:"period"`
		Limit  string `json:"limit"`
		Alerts []int  `json:"alerts"`
	}
	if e := decodeAdmin(w, r, &req); e != nil {
		WriteOpenAIError(w, e)
		return
	}
	n, e := parseAmount(req.Limit, "limit")
	if e != nil {
		WriteOpenAIError(w, e)
		return
	}
	b := ledger.Budget{Scope: ledger.Scope(r.PathValue("scope")), Subject: r.PathValue("subject"),
		Period: ledger.Period(req.Period), Limit: n, Alerts: req.Alerts}
	if err := s.Billing.Ledger.SetBudget(r.Context(), b); err != nil {
		WriteOpenAIError(w, ledgerError(err))
		return
	}
	s.getBudget(w, r)
}

func (s *Server) getBudget(w http.ResponseWriter, r *http.Request) {
	b, spent, pending, err := s.Billing.Ledger.BudgetUsage(r.Context(), ledger.Scope(r.PathValue("scope")), r.PathValue("subject"), s.Clock.Now())
	if err != nil {
		WriteOpenAIError(w, ledgerError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "budget", "scope": b.Scope, "subject": b.Subject, "period": b.Period,
		"limit": money.FormatNanos(b.Limit), "alerts": b.Alerts, "spent": money.FormatNanos(spent), "pending": money.FormatNanos(pending)})
}
