package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"baimo/internal/tokenize"
)

func init() {
	register(command{name: "tokens", summary: "count tokens of a text with a model's tokenizer", run: runTokens})
}

// maxTokensInput bounds the text that `baimo tokens count` reads.
const maxTokensInput = 256 << 20

func runTokens(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "count" {
		fmt.Fprintln(stderr, "usage: baimo tokens count --model M [--tokenizer NAME] [FILE]")
		return fmt.Errorf("%w: want the subcommand count", errUsage)
	}
	fs := newFlags("tokens count", stderr)
	model := fs.String("model", "", "model name, such as gpt-4o, qwen-plus or deepseek-chat (required unless --tokenizer)")
	tok := fs.String("tokenizer", "", "tokenizer name instead of the model's: o200k_base, cl100k_base, qwen2, deepseek_v3 or estimate")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("%w: at most one FILE", errUsage)
	}
	var (
		c     tokenize.Counter
		exact bool
	)
	switch {
	case *tok != "":
		var ok bool
		if c, ok = tokenize.ByName(*tok); !ok {
			return fmt.Errorf("%w: unknown tokenizer %q", errUsage, *tok)
		}
		exact = c.Exact()
	case *model != "":
		c, exact = tokenize.ForModel(*model)
		exact = exact && c.Exact()
	default:
		return fmt.Errorf("%w: --model is required", errUsage)
	}
	in, name := io.Reader(os.Stdin), "stdin"
	if fs.NArg() == 1 {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		in, name = f, fs.Arg(0)
	}
	data, err := io.ReadAll(io.LimitReader(in, maxTokensInput+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxTokensInput {
		return fmt.Errorf("read %s: longer than %d bytes", name, maxTokensInput)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	text := string(data)
	n := c.Count(text)
	chars := utf8.RuneCountInString(text)
	kind := "exact"
	if !exact {
		kind = "estimated"
	}
	perToken := 0.0
	if n > 0 {
		perToken = float64(chars) / float64(n)
	}
	fmt.Fprintf(stdout, "tokens: %d\ncharacters: %d\ncharacters per token: %.2f\ntokenizer: %s (%s)\n", n, chars, perToken, c.Name(), kind)
	return nil
}
