package tokenize

import (
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
)

var calibrate = flag.String("calibrate", "", "fit the estimator's coefficients on this text file (paragraphs separated by blank lines) and print them")

// naturalCases are the corpus entries that look like real prompts; the
// adversarial ones (long runs of one character) are left out.
var naturalCases = map[string]bool{
	"english": true, "chinese": true, "chinese_long": true, "japanese": true, "korean": true,
	"mixed_scripts": true, "code_python": true, "code_go": true, "code_js": true, "json": true, "html": true,
	"markdown": true, "mixed_zh_en": true, "chinese_punct": true, "digits_mixed": true, "emoji": true,
}

// TestCalibrateEstimator fits tokens ≈ Σ coefficient × characters of each
// kind by least squares against the mean of the Qwen2 and DeepSeek-V3
// counts, on the paragraphs of FILE plus the natural corpus entries (each
// weighted as much as 1/20 of FILE, so that other scripts count). It runs
// only with -calibrate=FILE.
func TestCalibrateEstimator(t *testing.T) {
	if *calibrate == "" {
		t.Skip("run with -calibrate=FILE to fit the estimator")
	}
	data, err := os.ReadFile(*calibrate)
	if err != nil {
		t.Fatal(err)
	}
	const n = numKinds
	var xtx [n][n]float64
	var xty [n]float64
	add := func(p string, w float64) {
		y := float64(Qwen2.Count(p)+DeepSeekV3.Count(p)) / 2
		k := charKinds(p)
		for i := range k {
			xty[i] += w * float64(k[i]) * y
			for j := range k {
				xtx[i][j] += w * float64(k[i]) * float64(k[j])
			}
		}
	}
	paras := strings.Split(string(data), "\n\n")
	for _, p := range paras {
		if p != "" {
			add(p, 1)
		}
	}
	var natural []string
	for _, c := range readCorpus(t) {
		if naturalCases[c.Name] {
			natural = append(natural, c.Text)
		}
	}
	for _, p := range natural {
		add(p, float64(len(paras))/20/float64(len(natural)))
	}
	for i := range n {
		xtx[i][i] += 1 // ridge: kinds absent from the data stay defined
	}
	for i := range n {
		for k := i + 1; k < n; k++ {
			m := xtx[k][i] / xtx[i][i]
			for j := i; j < n; j++ {
				xtx[k][j] -= m * xtx[i][j]
			}
			xty[k] -= m * xty[i]
		}
	}
	var c [n]float64
	for i := n - 1; i >= 0; i-- {
		s := xty[i]
		for j := i + 1; j < n; j++ {
			s -= xtx[i][j] * c[j]
		}
		c[i] = s / xtx[i][i]
	}
	names := []string{"CJK", "ASCIIWord", "Digit", "Letter", "ASCIIPunct", "Symbol", "Space", "Other"}
	for i, v := range c {
		fmt.Printf("\tkind%s: %.0f,\n", names[i], v*1000)
	}
}

// TestEstimatorError bounds the estimator's error on the natural corpus
// entries against the exact Qwen2 and DeepSeek-V3 counts.
func TestEstimatorError(t *testing.T) {
	var est, exact int
	for _, c := range readCorpus(t) {
		if !naturalCases[c.Name] {
			continue
		}
		e := Estimate(c.Text)
		x := (Qwen2.Count(c.Text) + DeepSeekV3.Count(c.Text)) / 2
		est += e
		exact += x
		if rel := math.Abs(float64(e-x)) / float64(x); rel > 0.5 {
			t.Errorf("%s: estimate %d, exact %d", c.Name, e, x)
		}
	}
	if rel := math.Abs(float64(est-exact)) / float64(exact); rel > 0.15 {
		t.Errorf("total estimate %d, exact %d: off by %.0f%%", est, exact, rel*100)
	}
	t.Logf("total estimate %d, exact %d", est, exact)
}

func TestEstimateSmall(t *testing.T) {
	tests := []struct {
		text string
		want int
	}{
		{"", 0},
		{"a", 1},
		{" ", 1},
	}
	for _, tt := range tests {
		if got := Estimate(tt.text); got != tt.want {
			t.Errorf("Estimate(%q) = %d, want %d", tt.text, got, tt.want)
		}
	}
	if n := Estimate(strings.Repeat("中", 1000)); n < 500 || n > 800 {
		t.Errorf("1000 Han characters: %d tokens, want 500–800", n)
	}
}
