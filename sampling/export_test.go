package sampling

// SetAttributeSetCap lowers the attribute-set cap for a test; it returns a
// function restoring it.
func SetAttributeSetCap(n int) (restore func()) {
	old := attributeSetCap
	attributeSetCap = n
	return func() { attributeSetCap = old }
}
