// Command coverfix stands in for the go command while gremlins runs, to work
// around gremlins issue #298 (v0.6.0): Go's coverage profile has no block for
// the expressions of a switch's case clauses (a block starts after the
// colon), so gremlins reports every mutant in them as NOT COVERED and never
// runs it, however well the switch is tested.
//
// The same holds for the values of package-level constants and variables,
// which no block covers: a mutant in `const MaxRange = 400 * 24 * time.Hour`
// is never run.
//
// coverfix runs the real go command (BAIMO_REAL_GO) with the same arguments.
// When that was a successful `go test ... -coverprofile FILE`, it adds to
// FILE, for each case expression of a switch whose statement ran, a block
// with the count of the block holding the switch, and for each value of a
// package-level const or var declaration a block with count 1 when some code
// of its package ran. A case after the one taken is never evaluated, so a
// mutant in it then runs and survives, showing as lived rather than hidden as
// not covered: the conservative side.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

func main() {
	real := os.Getenv("BAIMO_REAL_GO")
	if real == "" {
		fmt.Fprintln(os.Stderr, "coverfix: BAIMO_REAL_GO is not set")
		os.Exit(2)
	}
	if self(real) {
		// A BAIMO_REAL_GO resolved through the PATH that puts coverfix
		// first would run coverfix again, without end.
		fmt.Fprintf(os.Stderr, "coverfix: BAIMO_REAL_GO (%s) is coverfix itself\n", real)
		os.Exit(2)
	}
	cmd := exec.Command(real, withFlags(os.Args[1:], os.Getenv("BAIMO_TEST_GCFLAGS"))...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "coverfix:", err)
		os.Exit(2)
	}
	if profile := coverProfile(os.Args[1:]); profile != "" {
		if err := fix(profile); err != nil {
			fmt.Fprintln(os.Stderr, "coverfix:", err)
			os.Exit(2)
		}
	}
}

// withFlags adds -gcflags=gcflags to a go test command line when gcflags
// is set. run.sh sets it to compile the module's packages without
// optimisation or inlining ("baimo/...=-N -l"): a mutant recompiles its
// package and every package of the test binary that imports it, and that
// compiles in about half the time. What the code does is the same.
func withFlags(args []string, gcflags string) []string {
	if gcflags == "" || len(args) == 0 || args[0] != "test" {
		return args
	}
	return append([]string{"test", "-gcflags=" + gcflags}, args[1:]...)
}

// self reports whether path is this executable.
func self(path string) bool {
	exe, err := os.Executable()
	if err != nil {
		return false
	}
	a, errA := os.Stat(exe)
	b, errB := os.Stat(path)
	return errA == nil && errB == nil && os.SameFile(a, b)
}

// coverProfile returns the -coverprofile of a go test command line, or "".
func coverProfile(args []string) string {
	if len(args) == 0 || args[0] != "test" {
		return ""
	}
	for i, a := range args {
		a = strings.TrimPrefix(a, "-")
		switch {
		case (a == "-coverprofile" || a == "coverprofile") && i+1 < len(args):
			return args[i+1]
		case strings.HasPrefix(a, "coverprofile="), strings.HasPrefix(a, "-coverprofile="):
			return a[strings.Index(a, "=")+1:]
		}
	}
	return ""
}

// block is one line of a coverage profile.
type block struct {
	file                          string // import path form: module/dir/file.go
	startLine, startCol           int
	endLine, endCol, stmts, count int
}

func (b block) String() string {
	return fmt.Sprintf("%s:%d.%d,%d.%d %d %d", b.file, b.startLine, b.startCol, b.endLine, b.endCol, b.stmts, b.count)
}

// contains reports whether line:col lies in b.
func (b block) contains(line, col int) bool {
	after := line > b.startLine || (line == b.startLine && col >= b.startCol)
	before := line < b.endLine || (line == b.endLine && col <= b.endCol)
	return after && before
}

func parseBlock(s string) (block, error) {
	var b block
	colon := strings.LastIndex(s, ":")
	if colon < 0 {
		return b, fmt.Errorf("bad profile line %q", s)
	}
	b.file = s[:colon]
	f := strings.FieldsFunc(s[colon+1:], func(r rune) bool { return r == '.' || r == ',' || r == ' ' })
	if len(f) != 6 {
		return b, fmt.Errorf("bad profile line %q", s)
	}
	var n [6]int
	for i, x := range f {
		v, err := strconv.Atoi(x)
		if err != nil {
			return b, fmt.Errorf("bad profile line %q", s)
		}
		n[i] = v
	}
	b.startLine, b.startCol, b.endLine, b.endCol, b.stmts, b.count = n[0], n[1], n[2], n[3], n[4], n[5]
	return b, nil
}

func fix(profile string) error {
	data, err := os.ReadFile(profile)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "mode:") {
		return fmt.Errorf("%s: not a coverage profile", profile)
	}
	byFile := map[string][]block{}
	var order []string
	for _, l := range lines[1:] {
		b, err := parseBlock(l)
		if err != nil {
			return err
		}
		if _, ok := byFile[b.file]; !ok {
			order = append(order, b.file)
		}
		byFile[b.file] = append(byFile[b.file], b)
	}
	root, module, err := findModule()
	if err != nil {
		return err
	}
	ran := map[string]bool{} // package directories some code of which ran
	for name, bs := range byFile {
		for _, b := range bs {
			if b.count > 0 {
				ran[filepath.Dir(name)] = true
				break
			}
		}
	}
	var extra []block
	for _, name := range order {
		rel, ok := strings.CutPrefix(name, module+"/")
		if !ok {
			continue
		}
		extra = append(extra, caseBlocks(filepath.Join(root, rel), name, byFile[name], ran[filepath.Dir(name)])...)
	}
	if len(extra) == 0 {
		return nil
	}
	f, err := os.OpenFile(profile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, b := range extra {
		fmt.Fprintln(w, b)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// caseBlocks returns a block for each case expression of each switch in
// path whose statement ran, and, when packageRan, for each value of its
// package-level const and var declarations.
func caseBlocks(path, name string, blocks []block, packageRan bool) []block {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil // not a file we can read: leave its blocks as they are
	}
	var out []block
	expr := func(e ast.Expr, count int) {
		p, q := fset.Position(e.Pos()), fset.Position(e.End())
		out = append(out, block{file: name, startLine: p.Line, startCol: p.Column, endLine: q.Line, endCol: q.Column, count: count})
	}
	if packageRan {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || (gd.Tok != token.CONST && gd.Tok != token.VAR) {
				continue
			}
			for _, sp := range gd.Specs {
				for _, v := range sp.(*ast.ValueSpec).Values {
					if _, isFunc := v.(*ast.FuncLit); isFunc {
						continue // a function value's body has blocks of its own
					}
					expr(v, 1)
				}
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		sw, ok := n.(*ast.SwitchStmt)
		if !ok {
			return true
		}
		at := fset.Position(sw.Pos())
		count := 0
		for _, b := range blocks {
			if b.count > 0 && b.contains(at.Line, at.Column) {
				count = b.count
				break
			}
		}
		if count == 0 {
			return true
		}
		for _, s := range sw.Body.List {
			for _, e := range s.(*ast.CaseClause).List {
				expr(e, count)
			}
		}
		return true
	})
	return out
}

// findModule returns the directory and path of the module the current
// directory is in.
func findModule() (dir, path string, err error) {
	dir, err = os.Getwd()
	if err != nil {
		return "", "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if m, ok := strings.CutPrefix(strings.TrimSpace(l), "module "); ok {
					return dir, strings.Trim(strings.TrimSpace(m), `"`), nil
				}
			}
			return "", "", fmt.Errorf("%s/go.mod names no module", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", "", errors.New("no go.mod above the current directory")
		}
		dir = parent
	}
}
