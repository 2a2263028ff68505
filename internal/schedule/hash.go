package schedule

import (
	"encoding/binary"
	"math/bits"
)

// Block hashes name a prompt's blocks of BlockTokens tokens. Each hash covers
// its block and, through the previous hash, everything before it, so two
// prompts share a hash exactly when they share the prefix up to that block
// (up to 64-bit collisions). The chain starts from a seed derived from the
// model name, so equal prompts to different models never share. The hash is
// deterministic across processes: several gateway nodes compute the same
// names for the same prompt.

// BlockTokens is the block size of the prefix index, vLLM's default KV
// block size.
const BlockTokens = 16

const (
	mulA = 0x9E3779B97F4A7C15
	mulB = 0xBF58476D1CE4E5B9
	mulC = 0x94D049BB133111EB
)

// mix is a 64-bit finaliser (splitmix64's).
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= mulB
	x ^= x >> 27
	x *= mulC
	x ^= x >> 31
	return x
}

// Chain folds one 64-bit word into a running hash.
func Chain(h, w uint64) uint64 { return mix(h ^ (w+mulA)*mulA) }

// ModelSeed is the chain's start for a model.
func ModelSeed(model string) uint64 {
	h := uint64(0xcbf29ce484222325) // FNV-1a offset basis
	for i := 0; i < len(model); i++ {
		h = (h ^ uint64(model[i])) * 0x100000001b3
	}
	return mix(h)
}

// AppendTokenBlocks appends to dst the hashes of the full BlockTokens-token
// blocks of tokens, chained from seed, and returns dst. A partial last block
// has no hash (it cannot be shared: engines cache full blocks only).
func AppendTokenBlocks(dst []uint64, seed uint64, tokens []uint32) []uint64 {
	h := seed
	for i := 0; i+BlockTokens <= len(tokens); i += BlockTokens {
		b := tokens[i : i+BlockTokens : i+BlockTokens]
		// Two independent multiply-rotate lanes over the block's eight
		// token pairs, folded into the chain with a full mix.
		x, y := h^mulB, h^mulC
		for j := 0; j < BlockTokens; j += 4 {
			x = bits.RotateLeft64((x^(uint64(b[j])|uint64(b[j+1])<<32))*mulA, 29)
			y = bits.RotateLeft64((y^(uint64(b[j+2])|uint64(b[j+3])<<32))*mulB, 31)
		}
		h = mix(x ^ mix(y))
		dst = append(dst, h)
	}
	return dst
}

// AppendTraceBlocks appends the BlockTokens-token block hashes of a prompt
// that a trace describes by coarse block ids (Mooncake's hash_ids name
// 512-token blocks: idTokens 512), for a prompt of promptTokens tokens.
// Sub-block j of id k hashes (k, j) into the chain, so prompts sharing a
// leading run of ids share the corresponding blocks.
func AppendTraceBlocks(dst []uint64, seed uint64, ids []uint64, idTokens, promptTokens int) []uint64 {
	full := promptTokens / BlockTokens
	per := idTokens / BlockTokens
	h := seed
	n := 0
	for _, id := range ids {
		for j := 0; j < per && n < full; j++ {
			h = Chain(Chain(h, id), uint64(j))
			dst = append(dst, h)
			n++
		}
	}
	return dst
}

// TextBlockBytes is the size of a text block: 64 bytes, about 16 tokens of
// English at 4 bytes a token (the Gateway API inference extension's
// approximation).
const TextBlockBytes = 64

// AppendTextBlocks appends the hashes of the full TextBlockBytes-byte blocks
// of a rendered prompt, chained from seed: what a gateway can hash without
// tokenizing. Prompts that share a prefix of text share its blocks.
func AppendTextBlocks(dst []uint64, seed uint64, text []byte) []uint64 {
	h := seed
	for i := 0; i+TextBlockBytes <= len(text); i += TextBlockBytes {
		b := text[i : i+TextBlockBytes : i+TextBlockBytes]
		x, y := h^mulB, h^mulC
		for j := 0; j < TextBlockBytes; j += 16 {
			x = bits.RotateLeft64((x^binary.LittleEndian.Uint64(b[j:]))*mulA, 29)
			y = bits.RotateLeft64((y^binary.LittleEndian.Uint64(b[j+8:]))*mulB, 31)
		}
		h = mix(x ^ mix(y))
		dst = append(dst, h)
	}
	return dst
}
