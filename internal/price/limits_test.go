package price_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"baimo/internal/price"
)

// Catalog data is checked field by field, and every size and count has a
// limit that holds exactly: the limit itself loads, one more is refused
// with an error naming the file and the field.

// versionYAML is one valid version entry with extra fields appended.
func versionYAML(extra string) string {
	return `      - effective_from: "2025-01-01T00:00:00+08:00"
        currency: CNY
        unit: per_1m
        source: s
        prices: {input: "1"}
` + extra
}

func modelYAML(name, versions string) string {
	return "  - name: " + name + "\n    versions:\n" + versions
}

func loadYAML(data string) error {
	_, err := price.LoadFiles([]string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(data)})
	return err
}

func TestLoadFieldChecks(t *testing.T) {
	head := "vendor: acme\nmodels:\n"
	one := func(extra string) string { return head + modelYAML("m", versionYAML(extra)) }
	sched := func(windows string) string {
		return one("        schedule:\n          zone: UTC\n          windows:\n" + windows)
	}
	variants := func(names ...string) string {
		out := "        variants:\n"
		for _, n := range names {
			out += "          \"" + n + "\": {input: \"2\"}\n"
		}
		return out
	}
	numbered := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("v%d", i)
		}
		return out
	}
	win := func(fields string) string { return "            - {name: w, multiplier: \"2\", " + fields + "}\n" }
	tests := []struct {
		name string
		data string
		want string // "" loads; otherwise a substring of the error
	}{
		{"a zero price is a price", head + modelYAML("m", strings.Replace(versionYAML(""), `input: "1"`, `input: "0"`, 1)), ""},
		{"price per a given unit", one("        tiers: [{above: 10, prices: {search_call: {price: \"5\", per: 1000000000000}}}]\n"), ""},
		{"per above the limit", one("        tiers: [{above: 10, prices: {search_call: {price: \"5\", per: 1000000000001}}}]\n"),
			"f.yaml: models[0] (m).versions[0].tiers[0].prices.search_call.per: per 1000000000001 too large"},
		{"negative per", head + modelYAML("m", strings.Replace(versionYAML(""), `input: "1"`, `input: {price: "1", per: -5}`, 1)),
			"versions[0].prices.input.per: negative per -5"},
		{"bad tier price", one("        tiers: [{above: 10, prices: {output: \"x\"}}]\n"), "versions[0].tiers[0].prices.output: money: parse"},
		{"tier above the limit", one("        tiers: [{above: 1000000000001, prices: {output: \"3\"}}]\n"), "versions[0].tiers[0].above"},
		{"tier at the limit", one("        tiers: [{above: 1000000000000, prices: {output: \"3\"}}]\n"), ""},
		{"tier at zero", one("        tiers: [{above: 0, prices: {output: \"3\"}}]\n"), "versions[0].tiers[0].above: 0 must be above 0"},
		{"tiers equal", one("        tiers: [{above: 5, prices: {output: \"3\"}}, {above: 5, prices: {output: \"4\"}}]\n"),
			"versions[0].tiers[1].above: 5 must be above 5"},
		{"service tier", one("        service_tiers: {flex: \"0.5\"}\n"), ""},
		{"bad service tier multiplier", one("        service_tiers: {flex: \"x\"}\n"), "versions[0].service_tiers.flex:"},
		{"bad service tier name", one("        service_tiers: {\"fl ex\": \"0.5\"}\n"), "versions[0].service_tiers:"},
		{"year 2000", head + modelYAML("m", strings.Replace(versionYAML(""), "2025-01-01", "2000-01-01", 1)), ""},
		{"year 1999", head + modelYAML("m", strings.Replace(versionYAML(""), "2025-01-01T00:00:00+08:00", "1999-12-31T00:00:00Z", 1)),
			"versions[0].effective_from: year 1999 out of range"},
		{"year 2200", head + modelYAML("m", strings.Replace(versionYAML(""), "2025-01-01", "2200-12-31", 1)), ""},
		{"year 2201", head + modelYAML("m", strings.Replace(versionYAML(""), "2025-01-01", "2201-01-01", 1)), "year 2201 out of range"},
		{"no effective_from", head + modelYAML("m", strings.Replace(versionYAML(""), `effective_from: "2025-01-01T00:00:00+08:00"`, `note: x`, 1)),
			"versions[0].effective_from: required"},
		{"no source", head + modelYAML("m", strings.Replace(versionYAML(""), "source: s", "note: n", 1)), "versions[0].source: required"},
		{"bad checked date", one("        checked: 2025-13-01\n"), "versions[0].checked: want a date"},
		{"checked date", one("        checked: \"2025-12-01\"\n"), ""},
		{"version of another model", head + modelYAML("m", versionYAML("        model: other\n")), "versions[0].model: \"other\" differs"},
		{"version naming its model", head + modelYAML("m", versionYAML("        model: m\n")), ""},
		{"unknown model kind", head + "  - name: m\n    kind: video\n    versions:\n" + versionYAML(""), "models[0] (m).kind: unknown model kind"},
		{"unknown tokenizer", head + "  - name: m\n    tokenizer: nope\n    versions:\n" + versionYAML(""), "models[0] (m).tokenizer: unknown tokenizer"},
		{"bad alias", head + "  - name: m\n    aliases: [ok, \"b d\"]\n    versions:\n" + versionYAML(""), "models[0] (m).aliases[1]"},
		{"free quota", head + "  - name: m\n    free_quota: {tokens: 0, valid_days: 0}\n    versions:\n" + versionYAML(""), ""},
		{"negative free tokens", head + "  - name: m\n    free_quota: {tokens: -1}\n    versions:\n" + versionYAML(""), "models[0] (m).free_quota: negative quota"},
		{"negative free days", head + "  - name: m\n    free_quota: {valid_days: -1}\n    versions:\n" + versionYAML(""), "free_quota: negative quota"},
		{"model name twice", head + modelYAML("m", versionYAML("")) + modelYAML("m", versionYAML("")), "models[1] (m).name: model name or alias \"m\" defined twice"},
		{"alias of another model", head + modelYAML("m", versionYAML("")) + "  - name: n\n    aliases: [m]\n    versions:\n" + versionYAML(""),
			"models[1] (n).name:"},
		{"calendar twice", "calendars: [{name: c, holidays: []}, {name: c, holidays: []}]\n", "f.yaml: calendars[1].name: calendar \"c\" defined twice"},
		{"tokenizer twice", "tokenizers: [{name: t, zh_tokens_per_char: \"0.6\", en_tokens_per_word: \"1.3\"}, {name: t, zh_tokens_per_char: \"0.6\", en_tokens_per_word: \"1.3\"}]\n",
			"f.yaml: tokenizers[1].name: tokenizer \"t\" defined twice"},
		{"tokenizer without density", "tokenizers: [{name: t, zh_tokens_per_char: \"0.6\"}]\n", "tokenizers[0]: en_tokens_per_word: required"},
		{"tokenizer zero density", "tokenizers: [{name: t, zh_tokens_per_char: \"0\", en_tokens_per_word: \"1\"}]\n", "tokenizers[0]: zh_tokens_per_char:"},
		{"tokenizer without name", "tokenizers: [{zh_tokens_per_char: \"1\", en_tokens_per_word: \"1\"}]\n", "tokenizers[0]: name: required"},
		{"calendar without name", "calendars: [{holidays: []}]\n", "calendars[0]: name: required"},
		{"holiday to unreadable", "calendars: [{name: c, holidays: [{name: h, from: \"2026-01-01\", to: \"2026-01-xx\"}]}]\n", "calendars[0]: holidays[0].to: want a date"},
		{"holiday ends before it starts", "calendars: [{name: c, holidays: [{name: h, from: \"2026-01-05\", to: \"2026-01-04\"}]}]\n",
			"calendars[0]: holidays[0].to: 2026-01-04 is before from 2026-01-05"},
		{"holiday of one day", "calendars: [{name: c, holidays: [{name: h, from: \"2026-01-05\", to: \"2026-01-05\"}]}]\n", ""},
		{"holiday of 63 days", "calendars: [{name: c, holidays: [{name: h, from: \"2026-01-01\", to: \"2026-03-04\"}]}]\n", ""},
		{"holiday of 64 days", "calendars: [{name: c, holidays: [{name: h, from: \"2026-01-01\", to: \"2026-03-05\"}]}]\n",
			"holidays[0].to: range longer than 62 days"},
		{"a day in two holidays", "calendars: [{name: c, holidays: [{name: a, from: \"2026-01-01\", to: \"2026-01-03\"}, {name: b, from: \"2026-01-03\"}]}]\n",
			"holidays[1]: date 2026-01-03 listed twice"},
		{"window", sched(win(`from: "09:00", to: "10:00"`)), ""},
		{"window of no time", sched(win(`from: "09:00", to: "09:00"`)), "schedule.windows[0].to: 09:00 is not after from 09:00"},
		{"unknown day", sched(win(`days: [mon, funday], from: "09:00", to: "10:00"`)), "schedule.windows[0].days: unknown day \"funday\""},
		{"weekends", sched(win(`days: [weekends], from: "09:00", to: "10:00"`)), ""},
		{"bad from", sched(win(`from: "9:00", to: "10:00"`)), "schedule.windows[0].from: want HH:MM"},
		{"bad to", sched(win(`from: "09:00", to: "10"`)), "schedule.windows[0].to: want HH:MM"},
		{"clock with four parts", sched(win(`from: "09:00:00:00", to: "10:00"`)), "windows[0].from: want HH:MM"},
		{"clock not a number", sched(win(`from: "09:0x", to: "10:00"`)), "windows[0].from: want HH:MM"},
		{"clock negative", sched(win(`from: "-1:00", to: "10:00"`)), "windows[0].from"},
		{"minute 59", sched(win(`from: "09:59", to: "10:00"`)), ""},
		{"minute 60", sched(win(`from: "09:60", to: "11:00"`)), "windows[0].from: time of day out of range"},
		{"second 59", sched(win(`from: "09:00:59", to: "10:00"`)), ""},
		{"second 60", sched(win(`from: "09:00:60", to: "11:00"`)), "windows[0].from: time of day out of range"},
		{"hour 24", sched(win(`from: "23:00", to: "24:00"`)), ""},
		{"hour 25", sched(win(`from: "23:00", to: "25:00"`)), "windows[0].to: time of day out of range"},
		{"past 24:00 by a minute", sched(win(`from: "23:00", to: "24:01"`)), "windows[0].to: time of day out of range"},
		{"past 24:00 by a second", sched(win(`from: "23:00", to: "24:00:01"`)), "windows[0].to: time of day out of range"},
		{"bad window multiplier", sched("            - {name: w, from: \"09:00\", to: \"10:00\", multiplier: \"0\"}\n"), "windows[0].multiplier:"},
		{"window without name", sched("            - {from: \"09:00\", to: \"10:00\", multiplier: \"2\"}\n"), "windows[0].name: required"},
		{"skip holidays without calendar", sched(win(`from: "09:00", to: "10:00", skip_holidays: true`)),
			"schedule.windows[0].skip_holidays: needs the schedule's calendar"},
		{"no windows", one("        schedule: {zone: UTC, windows: []}\n"), "schedule.windows: want 1 to 16 windows, got 0"},
		{"no zone", one("        schedule: {windows: [{name: w, from: \"09:00\", to: \"10:00\", multiplier: \"2\"}]}\n"), "schedule.zone: required"},
		{"default period too long", one("        schedule: {zone: UTC, default_period: \"" + strings.Repeat("x", 2049) +
			"\", windows: [{name: w, from: \"09:00\", to: \"10:00\", multiplier: \"2\"}]}\n"), "schedule.default_period: longer than 2048"},
		{"note at the limit", head + "  - name: m\n    note: \"" + strings.Repeat("n", 2048) + "\"\n    versions:\n" + versionYAML(""), ""},
		{"note past the limit", head + "  - name: m\n    note: \"" + strings.Repeat("n", 2049) + "\"\n    versions:\n" + versionYAML(""),
			"models[0] (m).note: longer than 2048 bytes"},
		{"version note past the limit", one("        note: \"" + strings.Repeat("n", 2049) + "\"\n"), "versions[0].note: longer than 2048"},
		{"variant names at the ends of each range", one(variants("az", "AZ", "09", "a.b-c_d/e")), ""},
		{"variant name at the limit", one(variants(strings.Repeat("x", 64))), ""},
		{"variant name past the limit", one(variants(strings.Repeat("x", 65))), "versions[0].variants." + strings.Repeat("x", 65) + ": a variant is"},
		{"variant name below a", one(variants("`x")), "versions[0].variants.`x: a variant is"},
		{"variant name above z", one(variants("{x")), "versions[0].variants.{x: a variant is"},
		{"variant name below A", one(variants("@x")), "versions[0].variants.@x: a variant is"},
		{"variant name above Z", one(variants("[x")), "versions[0].variants.[x: a variant is"},
		{"variant name above 9", one(variants(":x")), "versions[0].variants.:x: a variant is"},
		{"variants at the limit", one(variants(numbered(64)...)), ""},
		{"variants past the limit", one(variants(numbered(65)...)), "versions[0].variants: 65 variants, at most 64"},
		{"zone at the limit", one("        schedule: {zone: \"" + strings.Repeat("z", 128) + "\", windows: [{name: w, from: \"09:00\", to: \"10:00\", multiplier: \"2\"}]}\n"),
			"schedule.zone: unknown time zone"},
		{"zone past the limit", one("        schedule: {zone: \"" + strings.Repeat("z", 129) + "\", windows: [{name: w, from: \"09:00\", to: \"10:00\", multiplier: \"2\"}]}\n"),
			"schedule.zone: too long"},
		{"name at the limit", head + modelYAML(strings.Repeat("a", 128), versionYAML("")), ""},
		{"name past the limit", head + modelYAML(strings.Repeat("a", 129), versionYAML("")), "name: longer than 128 bytes"},
		{"name with a space", head + modelYAML("\"a b\"", versionYAML("")), "name: \"a b\" contains a space"},
		{"name with a tab", head + modelYAML("\"a\\tb\"", versionYAML("")), "contains a space or control character"},
		{"name with DEL", head + modelYAML("\"a\\x7fb\"", versionYAML("")), "contains a space or control character"},
		{"name with punctuation", head + modelYAML("a!b~", versionYAML("")), ""},
		{"name in Chinese", head + modelYAML("文心", versionYAML("")), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadYAML(tt.data)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestLoadCountLimits: the largest count of each kind loads, one more does not.
func TestLoadCountLimits(t *testing.T) {
	repeat := func(n int, f func(i int) string) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteString(f(i))
		}
		return b.String()
	}
	versions := func(n int) string {
		return repeat(n, func(i int) string {
			return fmt.Sprintf("      - {effective_from: \"2025-01-01T%02d:%02d:%02d+08:00\", currency: CNY, unit: per_1m, source: s, prices: {input: \"1\"}}\n",
				i/3600, i/60%60, i%60)
		})
	}
	tiers := func(n int) string {
		return versionYAML("        tiers:\n" + repeat(n, func(i int) string { return fmt.Sprintf("          - {above: %d, prices: {output: \"2\"}}\n", i+1) }))
	}
	windows := func(n int) string {
		return versionYAML("        schedule:\n          zone: UTC\n          windows:\n" +
			repeat(n, func(i int) string {
				return fmt.Sprintf("            - {name: w%d, from: \"%02d:00\", to: \"%02d:30\", multiplier: \"2\"}\n", i, i, i)
			}))
	}
	holidays := func(n int) string {
		return "calendars:\n  - name: c\n    holidays:\n" + repeat(n, func(i int) string {
			return fmt.Sprintf("      - {name: h, from: \"%04d-01-01\"}\n", 2000+i)
		})
	}
	models := func(n int) string {
		return "vendor: v\nmodels:\n" + repeat(n, func(i int) string {
			return fmt.Sprintf("  - name: m%d\n    versions: [{effective_from: \"2025-01-01T00:00:00Z\", currency: CNY, unit: per_1m, source: s, prices: {input: \"1\"}}]\n", i)
		})
	}
	tests := []struct {
		name     string
		ok, over string
		want     string
	}{
		{"versions", "vendor: v\nmodels:\n" + modelYAML("m", versions(1000)), "vendor: v\nmodels:\n" + modelYAML("m", versions(1001)),
			"models[0] (m).versions: 1001 versions, at most 1000"},
		{"tiers", "vendor: v\nmodels:\n" + modelYAML("m", tiers(16)), "vendor: v\nmodels:\n" + modelYAML("m", tiers(17)),
			"versions[0].tiers: 17 tiers, at most 16"},
		{"windows", "vendor: v\nmodels:\n" + modelYAML("m", windows(16)), "vendor: v\nmodels:\n" + modelYAML("m", windows(17)),
			"versions[0].schedule.windows: want 1 to 16 windows, got 17"},
		{"holiday ranges", holidays(2000), holidays(2001), "calendars[0]: holidays: 2001 ranges, at most 2000"},
		{"models in a file", models(2000), models(2001), "f.yaml: models: 2001 models, at most 2000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := loadYAML(tt.ok); err != nil {
				t.Fatalf("at the limit: %v", err)
			}
			if err := loadYAML(tt.over); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("past the limit: err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestLoadFiles: Load reads the *.yaml files at the top of a file system, at
// most 256 of them, each at most 1 MiB.
func TestLoadFileLimits(t *testing.T) {
	small := []byte("vendor: v\n")
	fsys := func(n int) fstest.MapFS {
		m := fstest.MapFS{"README.md": {Data: []byte("not yaml: [")}, "sub/x.yaml": {Data: []byte("not yaml: [")}}
		for i := 0; i < n; i++ {
			m[fmt.Sprintf("f%03d.yaml", i)] = &fstest.MapFile{Data: small}
		}
		return m
	}
	if _, err := price.Load(fsys(256)); err != nil {
		t.Errorf("256 files: %v", err)
	}
	if _, err := price.Load(fsys(257)); err == nil || !strings.Contains(err.Error(), "257 catalog files, at most 256") {
		t.Errorf("257 files: err = %v", err)
	}
	// A file of exactly 1 MiB loads whole: the model at its end is there.
	tail := "vendor: v\nmodels:\n" + modelYAML("last", versionYAML(""))
	pad := "#" + strings.Repeat("x", 1<<20-len(tail)-2) + "\n"
	exact := pad + tail
	if len(exact) != 1<<20 {
		t.Fatalf("built %d bytes", len(exact))
	}
	c, err := price.Load(fstest.MapFS{"a.yaml": {Data: []byte(exact)}})
	if err != nil {
		t.Fatalf("a file of 1 MiB: %v", err)
	}
	if _, ok := c.Model("last"); !ok {
		t.Error("the model at the end of a 1 MiB file is missing")
	}
	_, err = price.Load(fstest.MapFS{"a.yaml": {Data: []byte("#" + exact)}})
	var le *price.LoadError
	if !errors.As(err, &le) || le.File != "a.yaml" || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Errorf("a file of 1 MiB + 1 byte: err = %v", err)
	}
	if _, err := price.Load(fstest.MapFS{"a.yaml": {Data: []byte("vendor: [")}}); err == nil || !strings.HasPrefix(err.Error(), "a.yaml: ") {
		t.Errorf("a bad file: err = %v, want one naming it", err)
	}
}
