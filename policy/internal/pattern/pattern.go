// Package pattern matches repository and tag names against the doublestar
// patterns the policy files use: * within one path segment, ** across
// segments, ? one character, [...] a class and {a,b} alternatives.
package pattern

import "github.com/bmatcuk/doublestar/v4"

// Any reports whether s matches one of patterns; an empty list matches
// everything.
func Any(patterns []string, s string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := doublestar.Match(p, s); ok {
			return true
		}
	}
	return false
}

// Valid reports whether p is a well-formed pattern.
func Valid(p string) bool { return doublestar.ValidatePattern(p) }
