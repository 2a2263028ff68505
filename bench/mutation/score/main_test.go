package main

import (
	"strings"
	"testing"
)

// A run of some packages keeps the saved scores of the others and replaces
// its own.
func TestStore(t *testing.T) {
	dir := t.TempDir()
	first := []pkgScore{{Label: "internal/a", Dir: "internal/a", Killed: 3, Date: "2026-12-01", Commit: "aaa"},
		{Label: "internal/b/x.go", Dir: "internal/b", Killed: 1, Lived: 1, Date: "2026-12-01", Commit: "aaa"}}
	if _, err := saveAndLoad(dir, first); err != nil {
		t.Fatal(err)
	}
	all, err := saveAndLoad(dir, []pkgScore{{Label: "internal/b/x.go", Dir: "internal/b", Killed: 2, Date: "2026-12-02", Commit: "bbb"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Label != "internal/a" || all[0].Killed != 3 || all[0].Commit != "aaa" ||
		all[1].Label != "internal/b/x.go" || all[1].Killed != 2 || all[1].Lived != 0 || all[1].Commit != "bbb" {
		t.Errorf("loaded %+v", all)
	}
	if !all[1].owns("internal/b/x.go") || all[1].owns("internal/b/y.go") || !all[0].owns("internal/a/z.go") ||
		all[0].owns("internal/a/sub/z.go") {
		t.Error("owns: wrong files")
	}
}

const eqList = `# comment
a/x.go: Add: CONDITIONALS_BOUNDARY: if x «<» 0 {
    the reason,
    on two lines
a/x.go: T.M: ARITHMETIC_BASE: return a «*» b
	sign is one
`

const xGo = `package a

func Add(x int) int {
	if x < 0 {
		return 1
	}
	if x < 0 {
		return 2
	}
	return 0
}

type T struct{}

func (T) M(a, b int) int {
	return a * b
}

func Other(x int) int {
	if x < 0 {
		return 1
	}
	return a * b
}
`

func TestScore(t *testing.T) {
	eqs, err := parseEquivalents(strings.NewReader(eqList))
	if err != nil {
		t.Fatal(err)
	}
	if len(eqs) != 2 || eqs[0].Reason != "the reason, on two lines" || eqs[0].Func != "Add" || eqs[1].Func != "T.M" ||
		eqs[0].Fragment != "if x < 0 {" || eqs[0].At != 5 || eqs[0].Token != "<" {
		t.Fatalf("parsed %+v", eqs)
	}
	rep := report{Files: []reportFile{{Name: "x.go"}}}
	add := func(typ, status string, line, col int) {
		rep.Files[0].Mutations = append(rep.Files[0].Mutations, reportMutation{typ, status, line, col})
	}
	add("CONDITIONALS_BOUNDARY", "LIVED", 4, 7)        // equivalent (first entry)
	add("CONDITIONALS_BOUNDARY", "LIVED", 7, 7)        // same text, same function: equivalent too
	add("CONDITIONALS_NEGATION", "LIVED", 4, 7)        // other type: counts
	add("ARITHMETIC_BASE", "NOT COVERED", 16, 11)      // equivalent (method)
	add("CONDITIONALS_BOUNDARY", "KILLED", 20, 7)      // same text in another function: counts
	add("ARITHMETIC_BASE", "TIMED OUT", 23, 11)        // other function: counts as timed out
	add("CONDITIONALS_NEGATION", "NOT COVERED", 20, 7) // counts
	add("CONDITIONALS_NEGATION", "NOT VIABLE", 20, 7)
	src, err := parseSource([]byte(xGo))
	if err != nil {
		t.Fatal(err)
	}
	p, err := score("a", rep, eqs, func(string) (source, error) { return src, nil })
	if err != nil {
		t.Fatal(err)
	}
	if p.Killed != 1 || p.Lived != 1 || p.NotCovered != 1 || p.TimedOut != 1 || p.NotViable != 1 || p.Equivalent != 3 {
		t.Errorf("score = %+v", p)
	}
	if p.Efficacy() != 50 || int(p.Coverage()) != 66 || len(p.Alive) != 3 {
		t.Errorf("efficacy %v coverage %v alive %d", p.Efficacy(), p.Coverage(), len(p.Alive))
	}
	if eqs[0].matched != 2 || eqs[1].matched != 1 {
		t.Errorf("matched %d, %d", eqs[0].matched, eqs[1].matched)
	}
	if len(p.Equivalents) != 2 || p.Equivalents[0] != "`a/x.go` `Add` CONDITIONALS_BOUNDARY `if x «<» 0 {`: the reason, on two lines" {
		t.Errorf("equivalents listed: %q", p.Equivalents)
	}

	// An equivalent mutant that a test kills means the entry is wrong.
	rep.Files[0].Mutations[0].Status = "KILLED"
	if _, err := score("a", rep, eqs, func(string) (source, error) { return src, nil }); err == nil {
		t.Error("a killed 'equivalent' mutant gave no error")
	}
}

func TestParseEquivalentsErrors(t *testing.T) {
	for _, bad := range []string{
		"  a reason first\n",
		"a/x.go: CONDITIONALS_BOUNDARY: if x «<» 0 {\n    reason\n", // no function
		"a/x.go: F: T: no marker\n    reason\n",
		"a/x.go: F: T: «x»\n", // no reason
	} {
		if _, err := parseEquivalents(strings.NewReader(bad)); err == nil {
			t.Errorf("parseEquivalents(%q): no error", bad)
		}
	}
}

// A package measured file by file gets one row summing its files, saying
// how many of them were measured; a package with a row of its own, or a
// single file row, gets none.
func TestByFile(t *testing.T) {
	pkgs := []pkgScore{
		{Label: "internal/l/a.go", Dir: "internal/l", Killed: 10, Lived: 1, NotCovered: 2, TimedOut: 1, Equivalent: 3, Elapsed: 5},
		{Label: "internal/l/b.go", Dir: "internal/l", Killed: 20, Lived: 2, NotViable: 4, Elapsed: 7},
		{Label: "internal/w", Dir: "internal/w", Killed: 5},
		{Label: "internal/w/x.go", Dir: "internal/w", Killed: 1},
		{Label: "internal/w/y.go", Dir: "internal/w", Killed: 1},
		{Label: "internal/g/one.go", Dir: "internal/g", Killed: 1},
	}
	got := byFile(pkgs, func(dir string) []string { return []string{"a.go", "b.go", "c.go"} })
	want := pkgScore{Label: "internal/l (2 of its 3 files)", Dir: "internal/l", Killed: 30, Lived: 3, NotCovered: 2,
		TimedOut: 1, NotViable: 4, Equivalent: 3, Elapsed: 12}
	if len(got) != 1 || got[0].Label != want.Label || got[0].Killed != want.Killed || got[0].Lived != want.Lived ||
		got[0].NotCovered != want.NotCovered || got[0].TimedOut != want.TimedOut || got[0].NotViable != want.NotViable ||
		got[0].Equivalent != want.Equivalent || got[0].Elapsed != want.Elapsed {
		t.Fatalf("byFile = %+v, want [%+v]", got, want)
	}
}
