package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"baimo/internal/faultproxy"
	"baimo/internal/keys"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/storetest"
	"baimo/internal/usage"
)

// Tests of nodes whose connection to PostgreSQL fails: a TCP fault proxy
// (package faultproxy) sits between a node's store and the database.

// proxiedDSN returns dsn pointing at a fault proxy in front of it.
func proxiedDSN(t *testing.T, dsn string) (string, *faultproxy.Proxy) {
	t.Helper()
	p, pdsn, err := faultproxy.StartURL(dsn, "5432")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return pdsn, p
}

// waitBound is the most a caller may wait for a partitioned store here: ten
// times the bound set on the waits (storeWait), far below the partition's
// length, so the check fails only when a bound is not honoured.
const (
	storeWait = 200 * time.Millisecond
	waitBound = 10 * storeWait
)

// TestPartitionBoundsWaits: while a node's connections to PostgreSQL drop
// every packet, a key lookup and a hold each give up within their bound;
// the hold that the stalled batch places after all, once the partition
// heals, is voided (its request was refused); the node then serves again,
// and after a cut (every connection reset) too. The books stay balanced.
func TestPartitionBoundsWaits(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	direct := openDSN(t, dsn)
	pdsn, proxy := proxiedDSN(t, dsn)
	node := openDSN(t, pdsn)
	books := ledger.New(node, ledger.Options{Node: "faulty", HoldWait: storeWait, TxTimeout: 10 * time.Second})
	t.Cleanup(func() { books.Close() })
	admin := ledger.New(direct, ledger.Options{Node: "admin"})
	t.Cleanup(func() { admin.Close() })
	if _, err := admin.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: 10 * money.Scale}); err != nil {
		t.Fatal(err)
	}
	const secret = "sk-baimo-partition"
	if err := direct.CreateKey(ctx, keys.Key{ID: "k1", Hash: keys.Hash(secret), Name: "k1", TenantID: "acme", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	hold := func(id string) error {
		_, err := books.Hold(ctx, ledger.HoldRequest{RequestID: id, TenantID: "acme", KeyID: "k1", Amount: money.New(money.Scale, money.CNY)})
		return err
	}
	if err := hold("before"); err != nil { // the pool has a connection before the partition
		t.Fatal(err)
	}

	proxy.Blackhole()
	start := time.Now()
	if err := hold("partitioned"); err == nil {
		t.Fatal("a hold succeeded through a partition")
	}
	if took := time.Since(start); took > waitBound {
		t.Errorf("a hold waited %s for a partitioned store; bound %s", took, waitBound)
	}
	lctx, cancel := context.WithTimeout(ctx, storeWait)
	start = time.Now()
	_, err := node.KeyByHash(lctx, keys.Hash(secret))
	cancel()
	if err == nil {
		t.Fatal("a key lookup succeeded through a partition")
	}
	if took := time.Since(start); took > waitBound {
		t.Errorf("a key lookup waited %s for a partitioned store; bound %s", took, waitBound)
	}

	proxy.Restore()
	eventually(t, "a hold after the partition healed", func() error { return hold("after-partition") })
	eventually(t, "the refused request's hold voided", func() error {
		h, err := holdOf(ctx, direct, "partitioned")
		switch {
		case errors.Is(err, ledger.ErrNotFound):
			t.Log("the stalled batch never placed the refused request's hold")
			return nil
		case err != nil:
			return err
		case h.State != ledger.HoldVoided:
			return errors.New("hold " + string(h.State))
		}
		t.Log("the stalled batch placed the refused request's hold; it was voided")
		return nil
	})

	proxy.Cut()
	start = time.Now()
	if err := hold("cut"); err == nil {
		t.Fatal("a hold succeeded through a cut connection")
	}
	if took := time.Since(start); took > waitBound {
		t.Errorf("a hold waited %s on a cut connection; bound %s", took, waitBound)
	}
	proxy.Restore()
	eventually(t, "a hold after the cut", func() error { return hold("after-cut") })
	if _, err := node.KeyByHash(ctx, keys.Hash(secret)); err != nil {
		t.Errorf("key lookup after the cut: %v", err)
	}

	// Settle what was held; nothing stays pending, the audit is clean.
	for _, id := range []string{"before", "after-partition", "after-cut"} {
		rec := usage.Record{RequestID: id, TenantID: "acme", KeyID: "k1", Model: "m", Status: 200, Currency: "CNY",
			CostNanos: money.Scale / 4, Start: time.Now()}
		if _, err := books.SettleBatch(ctx, []ledger.Settlement{{Record: rec}}); err != nil {
			t.Fatalf("settle %s: %v", id, err)
		}
	}
	if _, err := books.Void(ctx, "cut"); err != nil && !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("void of the cut hold: %v", err)
	}
	b, err := admin.Balance(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(10*money.Scale - 3*money.Scale/4); b.Posted != want || b.Pending != 0 {
		t.Errorf("balance %+v; want posted %s and nothing pending", b, money.FormatNanos(want))
	}
	storetest.AuditClean(t, direct, time.Now())
}

// eventually retries fn until it succeeds, for at most 15 s.
func eventually(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after 15 s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func holdOf(ctx context.Context, st ledger.Store, req string) (ledger.Hold, error) {
	var h ledger.Hold
	err := st.LedgerView(ctx, func(v ledger.Snapshot) error {
		var err error
		h, err = v.Hold(ctx, req)
		return err
	})
	return h, err
}

// TestPartitionedTransactionReleasesLocks: a node cut off while its
// transaction holds a tenant's account row does not stall the other nodes
// for as long as the partition lasts: the server ends the idle transaction
// (idle_in_transaction_session_timeout, set by Open) and another node's
// hold goes through.
func TestPartitionedTransactionReleasesLocks(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	direct := openDSN(t, dsn)
	pdsn, proxy := proxiedDSN(t, dsn)
	cut := openDSN(t, pdsn)
	books := ledger.New(direct, ledger.Options{Node: "other"})
	t.Cleanup(func() { books.Close() })
	if _, err := books.CreateTenant(ctx, ledger.Tenant{ID: "acme", Kind: ledger.Prepaid, Currency: money.CNY}); err != nil {
		t.Fatal(err)
	}
	if _, err := books.TopUp(ctx, ledger.MoneyRequest{TenantID: "acme", Amount: money.Scale}); err != nil {
		t.Fatal(err)
	}
	tx, err := cut.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // the server ended it
	if _, err := tx.Exec(ctx, `UPDATE ledger_accounts SET posted_credits = posted_credits WHERE id = 'tenant:acme'`); err != nil {
		t.Fatal(err)
	}
	proxy.Blackhole() // the node is cut off holding the row lock
	defer proxy.Restore()
	start := time.Now()
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := books.Hold(hctx, ledger.HoldRequest{RequestID: "r1", TenantID: "acme", Amount: money.New(money.Scale/10, money.CNY)}); err != nil {
		t.Fatalf("a hold while another node is cut off holding the account's lock: %v", err)
	}
	// Ten times the idle timeout: fails only if the lock outlived it by far.
	if took := time.Since(start); took > 10*idleInTxTimeout {
		t.Errorf("the hold waited %s for a lock held by a partitioned node; the server ends such a transaction after %s", took, idleInTxTimeout)
	}
}
