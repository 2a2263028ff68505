// Package catalog embeds baimo's shipped price data: one YAML file per
// vendor, plus holiday calendars and tokenizer densities. README.md in this
// directory describes the format and the sources.
package catalog

import (
	"embed"
	"fmt"

	"baimo/internal/price"
)

//go:embed *.yaml
var files embed.FS

// FS returns the embedded catalog files.
func FS() embed.FS { return files }

// Load builds a price.Catalog from the embedded files.
func Load() (*price.Catalog, error) {
	c, err := price.Load(files)
	if err != nil {
		return nil, fmt.Errorf("load embedded catalog: %w", err)
	}
	return c, nil
}
