package main

import (
	"strings"
	"testing"
)

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
