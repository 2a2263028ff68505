package price_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"baimo/internal/price"
	"baimo/internal/usage"
)

const mediaFile = `vendor: acme
models:
  - name: painter
    kind: image
    versions:
      - effective_from: "2025-01-01T00:00:00Z"
        currency: USD
        unit: per_1m
        source: s
        prices: {image: "0.04"}
        variants:
          "1024x1792": {image: "0.08"}
          hd: {image: "0.08"}
          "1024x1792/hd": {image: "0.12"}
  - name: token-painter
    kind: image
    versions:
      - effective_from: "2025-01-01T00:00:00Z"
        currency: USD
        unit: per_1m
        source: s
        prices: {input: "5", output: "40"}
  - name: listener
    kind: audio
    versions:
      - effective_from: "2025-01-01T00:00:00Z"
        currency: USD
        unit: per_1m
        source: s
        prices: {audio_second: "0.0001"}
`

func mediaCatalog(t *testing.T) *price.Catalog {
	t.Helper()
	c, err := price.LoadFiles([]string{"m.yaml"}, map[string][]byte{"m.yaml": []byte(mediaFile)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestVariants: images are priced by size and quality (the pair, else the
// size, else the quality, else the version's price), exactly.
func TestVariants(t *testing.T) {
	c := mediaCatalog(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		variant string
		want    string // the amount of 3 images, USD
	}{
		{"", "0.12"}, {"1024x1024/standard", "0.12"}, {"1024x1024/", "0.12"}, {"1024x1792/standard", "0.24"},
		{"1024x1792/", "0.24"}, {"/hd", "0.24"}, {"1024x1024/hd", "0.24"}, {"1024x1792/hd", "0.36"},
	} {
		r, err := c.Rate(usage.Usage{Images: 3}, price.RateContext{Model: "painter", At: at, Currency: "USD", Variant: tc.variant}, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.variant, err)
		}
		if got := r.Total.String(); !strings.HasPrefix(got, tc.want) {
			t.Errorf("variant %q: 3 images cost %s, want %s", tc.variant, got, tc.want)
		}
	}
}

// TestMediaRated: a media request is rated in the kinds its model prices:
// a per-image model is not charged for the tokens of its prompt, a
// per-token image model not for its image count; usage in no priced kind
// is refused, and a chat request's unpriced kinds still are.
func TestMediaRated(t *testing.T) {
	c := mediaCatalog(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rate := func(model string, u usage.Usage) (price.Rated, error) {
		return c.Rate(u, price.RateContext{Model: model, At: at, Currency: "USD"}, nil)
	}
	r, err := rate("painter", usage.Usage{Images: 2, Input: 50})
	if err != nil || len(r.Lines) != 1 || r.Lines[0].Kind != price.KindImage || r.Total.Nanos != 80_000_000 {
		t.Errorf("per-image model: %+v, %v", r, err)
	}
	r, err = rate("token-painter", usage.Usage{Images: 2, Input: 1000, Output: 4000})
	// 1000 × 5/1M + 4000 × 40/1M = 0.005 + 0.16
	if err != nil || len(r.Lines) != 2 || r.Total.Nanos != 165_000_000 {
		t.Errorf("per-token image model: %+v, %v", r, err)
	}
	r, err = rate("listener", usage.Usage{AudioSeconds: 61, Input: 9})
	if err != nil || r.Total.Nanos != 6_100_000 {
		t.Errorf("per-second model: %+v, %v", r, err)
	}
	var np *price.NoPriceError
	if _, err := rate("listener", usage.Usage{Characters: 10}); !errors.As(err, &np) {
		t.Errorf("usage in no priced kind: %v", err)
	}
	if _, err := rate("painter", usage.Usage{Input: 10}); !errors.As(err, &np) {
		t.Errorf("tokens of a per-image model without images: %v", err)
	}
}

func TestVariantLoadErrors(t *testing.T) {
	bad := strings.Replace(mediaFile, `"1024x1792": {image: "0.08"}`, `"1024 x 1792": {image: "0.08"}`, 1)
	if _, err := price.LoadFiles([]string{"m.yaml"}, map[string][]byte{"m.yaml": []byte(bad)}); err == nil || !strings.Contains(err.Error(), "variants.1024 x 1792") {
		t.Errorf("a bad variant name: %v", err)
	}
	bad = strings.Replace(mediaFile, `hd: {image: "0.08"}`, `hd: {images: "0.08"}`, 1)
	if _, err := price.LoadFiles([]string{"m.yaml"}, map[string][]byte{"m.yaml": []byte(bad)}); err == nil || !strings.Contains(err.Error(), "variants.hd") {
		t.Errorf("a bad variant price: %v", err)
	}
}
