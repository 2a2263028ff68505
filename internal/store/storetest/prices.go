package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"baimo/internal/price"
	"baimo/internal/usage"
)

func testDrift(t *testing.T, s Store) {
	ctx := context.Background()
	start := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var recs []usage.Record
	for i := 0; i < 6; i++ {
		r := record(i, start)
		r.Channel = []string{"a", "b"}[i%2]
		recs = append(recs, r)
	}
	recs[5].Usage.Source = usage.SourceCounted // not vendor-metered: not part of the audit
	if err := s.WriteRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	ds, err := s.VendorDrift(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	// record(i) has CountedInput 3i (0 for i=0: not audited) and Input 100+i.
	// a: i=2,4 → vendor 206, counted 18; b: i=1,3 → vendor 204, counted 12.
	if fmt.Sprintf("%+v", ds) != "[{Channel:a UpstreamModel:sim-chat Requests:2 VendorInput:206 CountedInput:18} {Channel:b UpstreamModel:sim-chat Requests:2 VendorInput:204 CountedInput:12}]" {
		t.Errorf("VendorDrift = %+v", ds)
	}
	ds, err = s.VendorDrift(ctx, start.Add(2*time.Minute), start.Add(3*time.Minute))
	if err != nil || len(ds) != 1 || ds[0].Requests != 1 || ds[0].Channel != "a" {
		t.Errorf("VendorDrift(window) = %+v, %v", ds, err)
	}
}

func testPrices(t *testing.T, s Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for i, id := range []string{"pv_b", "pv_a", "pv_c"} {
		if err := s.AddPriceVersion(ctx, price.StoredVersion{ID: id, Created: t0.Add(time.Duration(i) * time.Second), Spec: []byte(`{"model":"` + id + `"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddPriceVersion(ctx, price.StoredVersion{ID: "pv_a", Created: t0, Spec: []byte(`{}`)}); err == nil {
		t.Error("a duplicate price version id was stored")
	}
	if err := s.DeletePriceVersion(ctx, "pv_a"); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListPriceVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "pv_b" || list[1].ID != "pv_c" || string(list[1].Spec) != `{"model":"pv_c"}` || !list[0].Created.Equal(t0) {
		t.Errorf("ListPriceVersions = %+v, want pv_b then pv_c in the order added", list)
	}
	if err := s.SetPriceList(ctx, "acme", []byte(`{"markup_bp":1500}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPriceList(ctx, "acme", []byte(`{"markup_bp":-500}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPriceList(ctx, "other", []byte(`{"markup_bp":0}`)); err != nil {
		t.Fatal(err)
	}
	lists, err := s.PriceLists(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(lists) != 2 || string(lists["acme"]) != `{"markup_bp":-500}` {
		t.Errorf("PriceLists = %q, want the replaced acme list", lists)
	}
}
