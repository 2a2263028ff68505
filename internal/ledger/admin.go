package ledger

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"baimo/internal/money"
)

// CreateTenant creates a tenant with its account, its debt account and the
// system accounts of its currency. An existing id is ErrExists.
func (l *Ledger) CreateTenant(ctx context.Context, t Tenant) (Tenant, error) {
	if err := checkID("tenant id", t.ID); err != nil {
		return Tenant{}, err
	}
	if !t.Kind.Valid() {
		return Tenant{}, fmt.Errorf("tenant %s: kind %q: %w", t.ID, t.Kind, ErrInvalid)
	}
	if len(t.Currency) != 3 || strings.ToUpper(string(t.Currency)) != string(t.Currency) {
		return Tenant{}, fmt.Errorf("tenant %s: currency %q: %w", t.ID, t.Currency, ErrInvalid)
	}
	if t.Kind != Postpaid {
		t.CreditLimit = 0
	}
	if err := checkAmount(t.CreditLimit); err != nil {
		return Tenant{}, fmt.Errorf("tenant %s credit limit: %w", t.ID, err)
	}
	if len(t.Name) > MaxNoteLen {
		return Tenant{}, fmt.Errorf("tenant %s: name too long: %w", t.ID, ErrInvalid)
	}
	t.CreatedAt = l.clock.Now()
	err := l.update(ctx, func(tx Tx) error {
		if err := tx.CreateTenant(ctx, t); err != nil {
			return err
		}
		for _, a := range []Account{
			{ID: MainAccount(t.ID), TenantID: t.ID, Kind: t.Kind, Currency: t.Currency, CreditLimit: t.CreditLimit},
			{ID: DebtAccount(t.ID), TenantID: t.ID, Kind: Debt, Currency: t.Currency},
			{ID: RevenueAccount(t.Currency), Kind: System, Currency: t.Currency},
			{ID: FundingAccount(t.Currency), Kind: System, Currency: t.Currency},
		} {
			a.CreatedAt = t.CreatedAt
			if err := tx.CreateAccount(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Tenant{}, fmt.Errorf("create tenant %s: %w", t.ID, err)
	}
	return t, nil
}

// PrepareDefault readies the default tenant for a gateway that bills in c,
// at its start, before it serves: on a fresh install (its accounts have
// never moved) the tenant takes currency c, with the system accounts of c,
// and its creation time is set, since the schema creates it with neither
// known. A tenant with activity keeps its currency; the caller reports a
// mismatch. It returns the tenant as it stands.
func (l *Ledger) PrepareDefault(ctx context.Context, c money.Currency) (Tenant, error) {
	t, err := l.Tenant(ctx, DefaultTenantID)
	if err != nil || (t.Currency == c && !t.CreatedAt.IsZero()) {
		return t, err
	}
	now := l.clock.Now()
	changed := false
	err = l.update(ctx, func(tx Tx) error {
		ok, err := tx.RestartTenant(ctx, DefaultTenantID, c, now)
		if err != nil || !ok {
			changed = false
			return err
		}
		changed = true
		for _, id := range []string{RevenueAccount(c), FundingAccount(c)} {
			if err := tx.CreateAccount(ctx, Account{ID: id, Kind: System, Currency: c, CreatedAt: now}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return t, fmt.Errorf("prepare the default tenant: %w", err)
	}
	if !changed {
		return t, nil
	}
	l.tenants.Delete(DefaultTenantID)
	return l.Tenant(ctx, DefaultTenantID)
}

// OtherCurrency lists the tenants whose accounts are in another currency
// than c: a gateway billing in c can serve none of their priced requests.
func (l *Ledger) OtherCurrency(ctx context.Context, c money.Currency) ([]Tenant, error) {
	ts, err := l.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	var out []Tenant
	for _, t := range ts {
		if t.Currency != c {
			out = append(out, t)
		}
	}
	return out, nil
}

// Tenants lists every tenant.
func (l *Ledger) Tenants(ctx context.Context) ([]Tenant, error) {
	var out []Tenant
	err := l.store.LedgerView(ctx, func(v Snapshot) error {
		var err error
		out, err = v.Tenants(ctx)
		return err
	})
	return out, err
}

// Balance is a tenant's money at one moment.
type Balance struct {
	TenantID    string
	Kind        Kind
	Currency    money.Currency
	CreditLimit int64
	Posted      int64 // credits - debits
	Pending     int64 // held by requests in flight
	Available   int64 // Posted - Pending (may be negative for postpaid, down to -CreditLimit)
	Debt        int64 // unpaid overage; new holds are refused while > 0
}

// CreditUsed is how much of a postpaid tenant's credit is spent or held:
// what Available is below zero.
func (b Balance) CreditUsed() int64 { return max(-b.Available, 0) }

// Spendable is what the tenant may still hold or spend: Available, plus
// for a postpaid tenant its credit limit; nothing while it owes debt.
func (b Balance) Spendable() int64 {
	if b.Debt > 0 {
		return 0
	}
	s := b.Available
	if b.Kind == Postpaid {
		s += b.CreditLimit
	}
	return max(s, 0)
}

// AvailableNote says why Available is below zero, so that no view shows a
// negative balance without its reason; "" when it is not.
func (b Balance) AvailableNote() string {
	if b.Available >= 0 {
		return ""
	}
	if b.Kind == Postpaid {
		return fmt.Sprintf("Below zero because a postpaid tenant spends on credit: %s of its %s %s credit limit is spent or held; %s is left to spend.",
			money.FormatNanos(b.CreditUsed()), money.FormatNanos(b.CreditLimit), b.Currency, money.FormatNanos(b.Spendable()))
	}
	return fmt.Sprintf("Below zero: %s more is spent or held than was paid in, which a prepaid tenant's holds should prevent; run the audit (baimo audit).",
		money.FormatNanos(b.CreditUsed()))
}

// Balance returns a tenant's balance.
func (l *Ledger) Balance(ctx context.Context, tenantID string) (Balance, error) {
	tenantID = TenantFor(tenantID)
	if b, ok := l.mirrorBalance(tenantID); ok {
		return b, nil
	}
	var b Balance
	err := l.store.LedgerView(ctx, func(v Snapshot) error {
		a, err := v.Account(ctx, MainAccount(tenantID))
		if err != nil {
			return err
		}
		d, err := v.Account(ctx, DebtAccount(tenantID))
		if err != nil {
			return err
		}
		b = balanceOf(a, d)
		return nil
	})
	if err != nil {
		return Balance{}, fmt.Errorf("balance of %s: %w", tenantID, err)
	}
	return b, nil
}

// MoneyRequest is an admin money mutation on a tenant.
type MoneyRequest struct {
	TenantID       string
	Amount         int64  // nanos; TopUp and Refund take > 0, Adjust either sign
	RequestID      string // Refund: the request refunded (optional)
	Note           string
	IdempotencyKey string // same key and body: the first result; other body: ErrIdempotencyConflict
}

// MoneyResult is the outcome of an admin mutation; a replay returns the
// stored first outcome.
type MoneyResult struct {
	TransferID string         `json:"transfer_id"`
	TenantID   string         `json:"tenant_id"`
	Kind       TransferKind   `json:"kind"`
	Amount     int64          `json:"amount_nanos"`
	Currency   money.Currency `json:"currency"`
	Repaid     int64          `json:"repaid_nanos"` // debt paid down from the new money
	Balance    Balance        `json:"balance"`
}

// TopUp adds money to a tenant's account (and pays down any debt from it).
func (l *Ledger) TopUp(ctx context.Context, r MoneyRequest) (MoneyResult, error) {
	if r.Amount <= 0 {
		return MoneyResult{}, fmt.Errorf("top-up of %s: must be positive: %w", money.FormatNanos(r.Amount), ErrInvalid)
	}
	return l.mutate(ctx, KindTopUp, r)
}

// Adjust corrects a tenant's account by a signed amount. A negative
// adjustment may not take a prepaid account below zero (ErrInsufficientFunds).
func (l *Ledger) Adjust(ctx context.Context, r MoneyRequest) (MoneyResult, error) {
	if r.Amount == 0 {
		return MoneyResult{}, fmt.Errorf("adjustment of zero: %w", ErrInvalid)
	}
	return l.mutate(ctx, KindAdjust, r)
}

// Refund gives money back from revenue. With a RequestID, the refunds of that
// request may not exceed what it was charged.
func (l *Ledger) Refund(ctx context.Context, r MoneyRequest) (MoneyResult, error) {
	if r.Amount <= 0 {
		return MoneyResult{}, fmt.Errorf("refund of %s: must be positive: %w", money.FormatNanos(r.Amount), ErrInvalid)
	}
	return l.mutate(ctx, KindRefund, r)
}

func (l *Ledger) mutate(ctx context.Context, kind TransferKind, r MoneyRequest) (MoneyResult, error) {
	r.TenantID = TenantFor(r.TenantID)
	if err := checkID("tenant id", r.TenantID); err != nil {
		return MoneyResult{}, err
	}
	amt := r.Amount
	if amt < 0 {
		amt = -amt
	}
	if err := checkAmount(amt); err != nil {
		return MoneyResult{}, err
	}
	if len(r.Note) > MaxNoteLen || len(r.RequestID) > MaxIDLen || len(r.IdempotencyKey) > MaxIDLen {
		return MoneyResult{}, fmt.Errorf("%s: note, request id or idempotency key too long: %w", kind, ErrInvalid)
	}
	body := fmt.Sprintf("%s\x00%s\x00%d\x00%s\x00%s", kind, r.TenantID, r.Amount, r.RequestID, r.Note)
	return l.idempotent(ctx, string(kind), r.IdempotencyKey, body, func(tx Tx, id string, now time.Time) (MoneyResult, error) {
		t, err := l.tenant(ctx, tx, r.TenantID)
		if err != nil {
			return MoneyResult{}, err
		}
		main, fund, rev := MainAccount(t.ID), FundingAccount(t.Currency), RevenueAccount(t.Currency)
		tr := Transfer{ID: id, Amount: amt, Currency: t.Currency, Kind: kind, TenantID: t.ID, Note: r.Note, CreatedAt: now}
		var sys Delta
		sysID := fund
		switch {
		case kind == KindRefund:
			if r.RequestID != "" {
				if err := checkRefundable(ctx, tx, r.RequestID, t.ID, amt); err != nil {
					return MoneyResult{}, err
				}
			}
			tr.RequestID, tr.Debit, tr.Credit, sysID = r.RequestID, rev, main, rev
			err = mustApply(ctx, tx, main, Delta{PostedCredits: amt})
			sys = Delta{PostedDebits: amt}
		case r.Amount > 0:
			tr.Debit, tr.Credit = fund, main
			err = mustApply(ctx, tx, main, Delta{PostedCredits: amt})
			sys = Delta{PostedDebits: amt}
		default:
			tr.Debit, tr.Credit = main, fund
			var ok bool
			ok, err = tx.ApplyDelta(ctx, main, Delta{PostedDebits: amt}, Guard{Floor: true})
			if err == nil && !ok {
				return MoneyResult{}, fmt.Errorf("adjust %s by %s: %w", t.ID, money.FormatNanos(r.Amount), ErrInsufficientFunds)
			}
			sys = Delta{PostedCredits: amt}
		}
		if err != nil {
			return MoneyResult{}, err
		}
		if err := mustInsert(ctx, tx, tr); err != nil {
			return MoneyResult{}, err
		}
		res := MoneyResult{TransferID: id, TenantID: t.ID, Kind: kind, Amount: r.Amount, Currency: t.Currency}
		if tr.Credit == main {
			if res.Repaid, err = repay(ctx, tx, t, id, now); err != nil {
				return MoneyResult{}, err
			}
		}
		if err := mustApply(ctx, tx, sysID, sys); err != nil {
			return MoneyResult{}, err
		}
		res.Balance, err = balanceTx(ctx, tx, t)
		return res, err
	})
}

func checkRefundable(ctx context.Context, tx Tx, req, tenantID string, amt int64) error {
	ts, err := tx.TransfersByRequest(ctx, req)
	if err != nil {
		return err
	}
	var charged, refunded int64
	// A request settled with others of its batch has no transfer of its
	// own: its record says what was charged.
	if c, found, err := tx.RecordCost(ctx, req); err != nil {
		return err
	} else if found && c.SettledIn != 0 && TenantFor(c.TenantID) == tenantID {
		charged += c.Cost
	}
	for _, t := range ts {
		if t.TenantID != tenantID {
			continue
		}
		switch {
		case t.Kind == KindRefund:
			refunded += t.Amount
		case t.Flag == FlagPost || t.Kind == KindSettle || t.Kind == KindOverage || t.Kind == KindCharge || t.Kind == KindDebt:
			charged += t.Amount
		}
	}
	if refunded+amt > charged {
		return fmt.Errorf("refund %s of request %s: charged %s, already refunded %s: %w", money.FormatNanos(amt), req,
			money.FormatNanos(charged), money.FormatNanos(refunded), ErrInvalid)
	}
	return nil
}

// repay pays down a tenant's debt from what its account can spend.
func repay(ctx context.Context, tx Tx, t Tenant, id string, now time.Time) (int64, error) {
	d, err := tx.Account(ctx, DebtAccount(t.ID))
	if err != nil {
		return 0, err
	}
	owed := -d.Posted()
	if owed <= 0 {
		return 0, nil
	}
	a, err := tx.Account(ctx, MainAccount(t.ID))
	if err != nil {
		return 0, err
	}
	r := min(owed, a.Available())
	if t.Kind == Postpaid {
		r = min(owed, a.Available()+a.CreditLimit)
	}
	if r <= 0 {
		return 0, nil
	}
	ok, err := tx.ApplyDelta(ctx, a.ID, Delta{PostedDebits: r}, Guard{Floor: true})
	if err != nil || !ok {
		return 0, err
	}
	if err := mustApply(ctx, tx, d.ID, Delta{PostedCredits: r}); err != nil {
		return 0, err
	}
	return r, mustInsert(ctx, tx, Transfer{ID: id + "/repay", Debit: a.ID, Credit: d.ID, Amount: r, Currency: t.Currency,
		Kind: KindRepay, TenantID: t.ID, CreatedAt: now})
}

func balanceTx(ctx context.Context, v View, t Tenant) (Balance, error) {
	a, err := v.Account(ctx, MainAccount(t.ID))
	if err != nil {
		return Balance{}, err
	}
	d, err := v.Account(ctx, DebtAccount(t.ID))
	if err != nil {
		return Balance{}, err
	}
	return balanceOf(a, d), nil
}

// balanceOf is the balance of a tenant's main and debt accounts.
func balanceOf(main, debt Account) Balance {
	return Balance{TenantID: main.TenantID, Kind: main.Kind, Currency: main.Currency, CreditLimit: main.CreditLimit,
		Posted: main.Posted(), Pending: main.PendingDebits, Available: main.Available(), Debt: -debt.Posted()}
}

// idempotent runs fn once per idempotency key: a replay with the same body
// returns the stored result, one with another body ErrIdempotencyConflict.
// Without a key, fn runs with a random transfer id.
func (l *Ledger) idempotent(ctx context.Context, op, key, body string, fn func(tx Tx, id string, now time.Time) (MoneyResult, error)) (MoneyResult, error) {
	sum := sha256.Sum256([]byte(body))
	hash := hex.EncodeToString(sum[:])
	id := "adm:" + randomID()
	if key != "" {
		id = "idem:" + key
	}
	var res MoneyResult
	err := l.update(ctx, func(tx Tx) error {
		now := l.clock.Now()
		if key != "" {
			e, found, err := tx.Idempotency(ctx, key)
			if err != nil {
				return err
			}
			if found {
				if e.Op != op || e.BodyHash != hash {
					return fmt.Errorf("key %q: %w", key, ErrIdempotencyConflict)
				}
				return json.Unmarshal(e.Result, &res)
			}
		}
		r, err := fn(tx, id, now)
		if err != nil {
			return err
		}
		if key != "" {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := tx.PutIdempotency(ctx, IdempotencyEntry{Key: key, Op: op, BodyHash: hash, Result: b, CreatedAt: now}); err != nil {
				return err
			}
		}
		res = r
		return nil
	})
	if err != nil {
		return MoneyResult{}, fmt.Errorf("%s: %w", op, err)
	}
	return res, nil
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// CodePrefix starts every redemption code.
const CodePrefix = "rc-"

// HashCode returns the stored hash of a redemption code.
func HashCode(code string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(code)))
	return hex.EncodeToString(sum[:])
}

// CreateCode issues a one-time redemption code worth amount, valid until
// expires (zero: never). The code is returned once; only its hash is stored.
func (l *Ledger) CreateCode(ctx context.Context, amount money.Amount, expires time.Time) (string, Code, error) {
	if amount.Nanos <= 0 {
		return "", Code{}, fmt.Errorf("code worth %s: %w", amount, ErrInvalid)
	}
	if err := checkAmount(amount.Nanos); err != nil {
		return "", Code{}, err
	}
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", Code{}, fmt.Errorf("create code: %w", err)
	}
	code := CodePrefix + strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
	c := Code{Hash: HashCode(code), Prefix: code[:len(CodePrefix)+4], Amount: amount.Nanos, Currency: amount.Currency,
		State: "active", CreatedAt: l.clock.Now(), ExpiresAt: expires}
	err := l.update(ctx, func(tx Tx) error { return tx.CreateCode(ctx, c) })
	if err != nil {
		return "", Code{}, fmt.Errorf("create code: %w", err)
	}
	return code, c, nil
}

// Redeem credits a tenant with a code's value, once: of many concurrent
// redemptions of one code exactly one succeeds; the others get ErrCodeUsed.
func (l *Ledger) Redeem(ctx context.Context, tenantID, code, idempotencyKey string) (MoneyResult, error) {
	tenantID = TenantFor(tenantID)
	if len(code) > MaxIDLen || len(idempotencyKey) > MaxIDLen {
		return MoneyResult{}, fmt.Errorf("redeem: code or key too long: %w", ErrInvalid)
	}
	hash := HashCode(code)
	body := "redeem\x00" + tenantID + "\x00" + hash
	return l.idempotent(ctx, "redeem", idempotencyKey, body, func(tx Tx, _ string, now time.Time) (MoneyResult, error) {
		t, err := l.tenant(ctx, tx, tenantID)
		if err != nil {
			return MoneyResult{}, err
		}
		c, err := tx.Code(ctx, hash)
		if err != nil {
			return MoneyResult{}, fmt.Errorf("code %s: %w", hashPrefix(hash), err)
		}
		if c.Currency != t.Currency {
			return MoneyResult{}, fmt.Errorf("code in %s for a %s account: %w", c.Currency, t.Currency, ErrInvalid)
		}
		c, ok, err := tx.ClaimCode(ctx, hash, t.ID, now)
		if err != nil {
			return MoneyResult{}, err
		}
		if !ok {
			return MoneyResult{}, fmt.Errorf("code %s: %w", hashPrefix(hash), ErrCodeUsed)
		}
		id := "code:" + hash
		main, fund := MainAccount(t.ID), FundingAccount(t.Currency)
		if err := mustApply(ctx, tx, main, Delta{PostedCredits: c.Amount}); err != nil {
			return MoneyResult{}, err
		}
		if err := mustInsert(ctx, tx, Transfer{ID: id, Debit: fund, Credit: main, Amount: c.Amount, Currency: t.Currency,
			Kind: KindRedeem, TenantID: t.ID, CreatedAt: now}); err != nil {
			return MoneyResult{}, err
		}
		res := MoneyResult{TransferID: id, TenantID: t.ID, Kind: KindRedeem, Amount: c.Amount, Currency: t.Currency}
		if res.Repaid, err = repay(ctx, tx, t, id, now); err != nil {
			return MoneyResult{}, err
		}
		if err := mustApply(ctx, tx, fund, Delta{PostedDebits: c.Amount}); err != nil {
			return MoneyResult{}, err
		}
		res.Balance, err = balanceTx(ctx, tx, t)
		return res, err
	})
}

func hashPrefix(h string) string { return h[:min(len(h), 8)] }

// Tenant returns a tenant, from a cache after the first read (a tenant's kind
// and currency never change). An unknown tenant is ErrNotFound.
func (l *Ledger) Tenant(ctx context.Context, id string) (Tenant, error) {
	id = TenantFor(id)
	if t, ok := l.tenants.Load(id); ok {
		return t.(Tenant), nil
	}
	var t Tenant
	err := l.store.LedgerView(ctx, func(v Snapshot) error {
		var err error
		t, err = l.tenant(ctx, v, id)
		return err
	})
	return t, err
}
