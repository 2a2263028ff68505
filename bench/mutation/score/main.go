// Command score reads the JSON reports gremlins (a mutation tester) wrote for
// the packages of the money path, leaves out the mutants listed as equivalent
// (they cannot change behaviour), and writes the test efficacy and mutator
// coverage of each package as Markdown, with every mutant still alive or not
// covered, so a reader sees what no test would notice.
//
//	go run ./bench/mutation/score -equivalent bench/mutation/equivalent.txt \
//	    -out bench/mutation/RESULTS.md internal/money=bench/out/mutation/money.json \
//	    internal/gateway/billing.go@internal/gateway=bench/out/mutation/gateway_billing.json ...
//
// An argument is [label@]pkgdir=report.json: the label names the package
// (or the one file of it that was mutated) in the table.
//
// With -store DIR, each package scored is saved to DIR/<label>.json with the
// date and commit of its run (-date, -commit), and the Markdown covers every
// package saved there: a run of some packages keeps the scores of the others,
// each with the date and commit it was measured at. A saved score holds the
// text of its surviving mutants, so it stays readable after the code moves.
//
// Efficacy is killed / (killed + lived); coverage is (killed + lived) /
// (killed + lived + not covered). As in gremlins, mutants whose test run timed
// out (most often a loop that no longer ends) and mutants that do not compile
// (not viable) count in neither; the timed-out ones are listed for a reader to
// check.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

func main() {
	eqPath := flag.String("equivalent", "bench/mutation/equivalent.txt", "the list of equivalent mutants")
	out := flag.String("out", "", "write the Markdown here (default: standard output)")
	root := flag.String("root", ".", "the module root the package paths are relative to")
	header := flag.String("header", "", "a Markdown file to put above the tables")
	minEff := flag.Float64("min-efficacy", 0, "exit 1 when a package's efficacy is below this percentage")
	minCov := flag.Float64("min-coverage", 0, "exit 1 when a package's mutator coverage is below this percentage")
	store := flag.String("store", "", "save each package's score here and write the Markdown of every saved one")
	date := flag.String("date", "", "the date of this run, saved with its scores")
	commit := flag.String("commit", "", "the commit this run measured, saved with its scores")
	flag.Parse()
	if flag.NArg() == 0 && *store == "" {
		fmt.Fprintln(os.Stderr, "usage: score [flags] [label@]pkgdir=report.json ...")
		os.Exit(2)
	}
	eqf, err := os.Open(*eqPath)
	if err != nil {
		fatal(err)
	}
	eqs, err := parseEquivalents(eqf)
	eqf.Close()
	if err != nil {
		fatal(fmt.Errorf("%s: %w", *eqPath, err))
	}
	var pkgs []pkgScore
	for _, arg := range flag.Args() {
		spec, report, ok := strings.Cut(arg, "=")
		if !ok {
			fatal(fmt.Errorf("argument %q: want [label@]pkgdir=report.json", arg))
		}
		label, dir, ok := strings.Cut(spec, "@")
		if !ok {
			label, dir = spec, spec
		}
		rep, err := readReport(report)
		if err != nil {
			fatal(err)
		}
		ps, err := score(dir, rep, eqs, func(file string) (source, error) { return readSource(filepath.Join(*root, dir, file)) })
		if err != nil {
			fatal(err)
		}
		ps.Label, ps.Date, ps.Commit = label, *date, *commit
		pkgs = append(pkgs, ps)
	}
	// An entry of a package scored now that matched no mutant is stale.
	for _, e := range eqs {
		for _, p := range pkgs {
			if e.matched == 0 && p.owns(e.File) {
				fmt.Fprintf(os.Stderr, "score: equivalent entry matches no mutant (stale?): %s\n", e)
				break
			}
		}
	}
	if *store != "" {
		if pkgs, err = saveAndLoad(*store, pkgs); err != nil {
			fatal(err)
		}
	}
	var head []byte
	if *header != "" {
		if head, err = os.ReadFile(*header); err != nil {
			fatal(err)
		}
	}
	w := io.Writer(os.Stdout)
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fatal(err)
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriter(w)
	bw.Write(head)
	writeMarkdown(bw, pkgs, byFile(pkgs, func(dir string) []string { return goFiles(filepath.Join(*root, dir)) }))
	if err := bw.Flush(); err != nil {
		fatal(err)
	}
	failed := false
	for _, p := range append(pkgs, byFile(pkgs, func(dir string) []string { return goFiles(filepath.Join(*root, dir)) })...) {
		if p.Efficacy() < *minEff || p.Coverage() < *minCov {
			fmt.Fprintf(os.Stderr, "score: %s: efficacy %.1f%%, coverage %.1f%%: below %.1f%% / %.1f%%\n",
				p.Label, p.Efficacy(), p.Coverage(), *minEff, *minCov)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "score:", err)
	os.Exit(1)
}

// report is the part of gremlins's JSON output this command reads.
type report struct {
	Files   []reportFile `json:"files"`
	Elapsed float64      `json:"elapsed_time"`
}

type reportFile struct {
	Name      string           `json:"file_name"` // relative to the package directory
	Mutations []reportMutation `json:"mutations"`
}

type reportMutation struct {
	Type   string `json:"type"`
	Status string `json:"status"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
}

func readReport(path string) (report, error) {
	var r report
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// source is one Go file: its lines, and the function each line is in.
type source struct {
	lines []string
	funcs []funcSpan
}

type funcSpan struct {
	name       string // Name, or Recv.Name for a method
	start, end int    // lines, inclusive
}

func readSource(path string) (source, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return source{}, err
	}
	s, err := parseSource(b)
	if err != nil {
		return source{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func parseSource(b []byte) (source, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", b, parser.SkipObjectResolution)
	if err != nil {
		return source{}, err
	}
	s := source{lines: strings.Split(string(b), "\n")}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok {
			continue
		}
		name := fd.Name.Name
		if fd.Recv != nil && len(fd.Recv.List) == 1 {
			t := fd.Recv.List[0].Type
			if st, ok := t.(*ast.StarExpr); ok {
				t = st.X
			}
			if ix, ok := t.(*ast.IndexExpr); ok {
				t = ix.X
			}
			if id, ok := t.(*ast.Ident); ok {
				name = id.Name + "." + name
			}
		}
		s.funcs = append(s.funcs, funcSpan{name: name, start: fset.Position(fd.Pos()).Line, end: fset.Position(fd.End()).Line})
	}
	return s, nil
}

// funcAt returns the name of the function line is in, or "-".
func (s source) funcAt(line int) string {
	for _, f := range s.funcs {
		if f.start <= line && line <= f.end {
			return f.name
		}
	}
	return "-"
}

// equivalent is one entry of the equivalent-mutant list: in function Func
// of File, the mutant of Type at the token marked «…» in a line containing
// Fragment.
type equivalent struct {
	File     string // relative to the module root
	Func     string // Name, or Recv.Name for a method
	Type     string
	Fragment string // the source text, markers removed
	At       int    // byte offset of the marked token in Fragment
	Token    string // the marked token
	Reason   string
	matched  int
}

func (e *equivalent) String() string {
	return fmt.Sprintf("%s: %s: %s: %s", e.File, e.Func, e.Type, e.marked())
}

// line is the entry as the Markdown lists it.
func (e *equivalent) line() string {
	return fmt.Sprintf("`%s` `%s` %s `%s`: %s", e.File, e.Func, e.Type, e.marked(), e.Reason)
}

// marked returns the fragment with its token marked again.
func (e *equivalent) marked() string {
	end := e.At + len(e.Token)
	return e.Fragment[:e.At] + "«" + e.Token + "»" + e.Fragment[end:]
}

// parseEquivalents reads entries of the form
//
//	path/to/file.go: Func: TYPE: source text with the «token» marked
//	    the reason, on one or more indented lines
//
// Func is the enclosing function (Recv.Name for a method).
//
// Blank lines and lines starting with # are ignored.
func parseEquivalents(r io.Reader) ([]*equivalent, error) {
	var out []*equivalent
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			continue
		case line[0] == ' ' || line[0] == '\t':
			if len(out) == 0 {
				return nil, fmt.Errorf("line %d: a reason before any entry", n)
			}
			e := out[len(out)-1]
			e.Reason = strings.TrimSpace(e.Reason + " " + trimmed)
			continue
		}
		file, rest, ok1 := strings.Cut(line, ": ")
		fn, rest, ok2 := strings.Cut(rest, ": ")
		typ, frag, ok3 := strings.Cut(rest, ": ")
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("line %d: want \"file: Func: TYPE: fragment\"", n)
		}
		open := strings.Index(frag, "«")
		closing := strings.Index(frag, "»")
		if open < 0 || closing < open {
			return nil, fmt.Errorf("line %d: mark the mutated token with «»", n)
		}
		plain := frag[:open] + frag[open+len("«"):closing] + frag[closing+len("»"):]
		out = append(out, &equivalent{File: file, Func: fn, Type: typ, Fragment: plain, At: open,
			Token: frag[open+len("«") : closing]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, e := range out {
		if e.Reason == "" {
			return nil, fmt.Errorf("entry %s has no reason", e)
		}
	}
	return out, nil
}

// matches reports whether e names the mutant of type typ at 1-based column
// col of text, a line of function fn in file.
func (e *equivalent) matches(file, fn, typ, text string, col int) bool {
	if e.File != file || e.Func != fn || e.Type != typ {
		return false
	}
	start := col - 1 - e.At
	return start >= 0 && strings.HasPrefix(text[start:], e.Fragment)
}

// mutant is one mutant worth showing a reader.
type mutant struct {
	File, Type, Status, Text string
	Line, Column             int
}

type pkgScore struct {
	Label                               string // the package, or the one file of it that was mutated
	Dir                                 string
	Date, Commit                        string // of the run that measured it
	Killed, Lived, NotCovered, TimedOut int
	NotViable, Equivalent               int
	Elapsed                             float64
	Alive                               []mutant // lived, not covered or timed out; equivalents left out
	Equivalents                         []string // the entries of the list that matched, with their reasons
}

// owns reports whether file (relative to the module root) was mutated in p.
func (p pkgScore) owns(file string) bool {
	if strings.HasSuffix(p.Label, ".go") {
		return file == p.Label
	}
	return filepath.Dir(file) == p.Dir
}

// saveAndLoad saves pkgs to dir, one file per label, and returns every
// package saved there, by label.
func saveAndLoad(dir string, pkgs []pkgScore) ([]pkgScore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, p := range pkgs {
		b, err := json.MarshalIndent(p, "", "  ")
		if err != nil {
			return nil, err
		}
		name := strings.NewReplacer("/", "_", ".", "_").Replace(p.Label) + ".json"
		if err := os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644); err != nil {
			return nil, err
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var all []pkgScore
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var p pkgScore
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		all = append(all, p)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Label < all[j].Label })
	return all, nil
}

// Efficacy is the percentage of covered mutants the tests kill.
func (p pkgScore) Efficacy() float64 {
	if p.Killed+p.Lived == 0 {
		return 100
	}
	return 100 * float64(p.Killed) / float64(p.Killed+p.Lived)
}

// Coverage is the percentage of mutants some test runs.
func (p pkgScore) Coverage() float64 {
	n := p.Killed + p.Lived + p.NotCovered
	if n == 0 {
		return 100
	}
	return 100 * float64(p.Killed+p.Lived) / float64(n)
}

func score(dir string, rep report, eqs []*equivalent, read func(file string) (source, error)) (pkgScore, error) {
	p := pkgScore{Dir: dir, Elapsed: rep.Elapsed}
	for _, f := range rep.Files {
		src, err := read(f.Name)
		if err != nil {
			return p, err
		}
		lines := src.lines
		path := filepath.ToSlash(filepath.Join(dir, f.Name))
		for _, m := range f.Mutations {
			if m.Line < 1 || m.Line > len(lines) {
				return p, fmt.Errorf("%s:%d: no such line (is the report older than the source?)", path, m.Line)
			}
			text := lines[m.Line-1]
			if m.Column < 1 || m.Column > len(text) {
				return p, fmt.Errorf("%s:%d:%d: no such column (is the report older than the source?)", path, m.Line, m.Column)
			}
			var eq *equivalent
			for _, e := range eqs {
				if e.matches(path, src.funcAt(m.Line), m.Type, text, m.Column) {
					eq = e
					break
				}
			}
			if eq != nil {
				if !slices.Contains(p.Equivalents, eq.line()) {
					p.Equivalents = append(p.Equivalents, eq.line())
				}
				eq.matched++
				if m.Status == "KILLED" {
					return p, fmt.Errorf("%s:%d:%d %s is listed as equivalent but a test killed it: %s", path, m.Line, m.Column, m.Type, eq)
				}
				p.Equivalent++
				continue
			}
			switch m.Status {
			case "KILLED":
				p.Killed++
			case "TIMED OUT":
				p.TimedOut++
			case "LIVED":
				p.Lived++
			case "NOT COVERED":
				p.NotCovered++
			case "NOT VIABLE":
				p.NotViable++
				continue
			default:
				return p, fmt.Errorf("%s:%d:%d: unknown status %q", path, m.Line, m.Column, m.Status)
			}
			if m.Status == "LIVED" || m.Status == "NOT COVERED" || m.Status == "TIMED OUT" {
				p.Alive = append(p.Alive, mutant{File: path, Type: m.Type, Status: m.Status, Text: text, Line: m.Line, Column: m.Column})
			}
		}
	}
	sort.Slice(p.Alive, func(i, j int) bool {
		a, b := p.Alive[i], p.Alive[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return p, nil
}

// byFile sums, for each package measured file by file (two or more file
// rows and no row of the whole package), its files' scores into one row
// labelled with how many of its files (listed by files) were measured.
func byFile(pkgs []pkgScore, files func(dir string) []string) []pkgScore {
	whole := map[string]bool{}
	rows := map[string][]pkgScore{}
	var dirs []string
	for _, p := range pkgs {
		if !strings.HasSuffix(p.Label, ".go") {
			whole[p.Dir] = true
			continue
		}
		if rows[p.Dir] == nil {
			dirs = append(dirs, p.Dir)
		}
		rows[p.Dir] = append(rows[p.Dir], p)
	}
	sort.Strings(dirs)
	var out []pkgScore
	for _, dir := range dirs {
		if whole[dir] || len(rows[dir]) < 2 {
			continue
		}
		t := pkgScore{Dir: dir}
		for _, p := range rows[dir] {
			t.Killed += p.Killed
			t.Lived += p.Lived
			t.NotCovered += p.NotCovered
			t.TimedOut += p.TimedOut
			t.NotViable += p.NotViable
			t.Equivalent += p.Equivalent
			t.Elapsed += p.Elapsed
		}
		t.Label = fmt.Sprintf("%s (%d of its %d files)", dir, len(rows[dir]), len(files(dir)))
		out = append(out, t)
	}
	return out
}

// goFiles lists the non-test Go files of dir.
func goFiles(dir string) []string {
	var out []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			out = append(out, n)
		}
	}
	return out
}

func writeMarkdown(w io.Writer, pkgs, totals []pkgScore) {
	if len(totals) > 0 {
		fmt.Fprintln(w, "Packages measured file by file, each file's row below summed:")
		fmt.Fprintln(w)
		writeRows(w, totals)
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Each run:")
		fmt.Fprintln(w)
	}
	writeRows(w, pkgs)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Mutants that lived, were not covered, or timed out")
	fmt.Fprintln(w)
	any := false
	for _, p := range pkgs {
		for _, m := range p.Alive {
			any = true
			fmt.Fprintf(w, "- %s `%s:%d:%d` %s: `%s`\n", strings.ToLower(m.Status), m.File, m.Line, m.Column, m.Type,
				strings.TrimSpace(m.Text))
		}
	}
	if !any {
		fmt.Fprintln(w, "None.")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Equivalent mutants (excluded from the scores)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Read from `bench/mutation/equivalent.txt`; «» marks the mutated token.")
	fmt.Fprintln(w)
	for _, p := range pkgs {
		for _, e := range p.Equivalents {
			fmt.Fprintf(w, "- %s\n", e)
		}
	}
}

func writeRows(w io.Writer, pkgs []pkgScore) {
	fmt.Fprintln(w, "| package | efficacy | mutator coverage | killed | lived | not covered | timed out | not viable | equivalent (excluded) | run time | date | commit |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
	for _, p := range pkgs {
		fmt.Fprintf(w, "| `%s` | %.1f%% | %.1f%% | %d | %d | %d | %d | %d | %d | %.0f s | %s | %s |\n", p.Label, p.Efficacy(), p.Coverage(),
			p.Killed, p.Lived, p.NotCovered, p.TimedOut, p.NotViable, p.Equivalent, p.Elapsed, orDash(p.Date), orDash(p.Commit))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
