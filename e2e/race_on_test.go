//go:build race

package e2e

// raceBuild is true when the tests run with -race; baimo is then built with it too.
const raceBuild = true
