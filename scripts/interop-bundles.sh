# Sigstore bundle checks for scripts/interop.sh, which sources this file
# and calls bundle_checks at the end of the checks it runs on each
# registry, with $ociwf, $reg, $on, $work (keys ociwf.*, cosign.*,
# security.*, empty_trusted_root.json), $run (this registry's files: the
# pulled workflow in stock/, provenance.json), $off and its helpers (check,
# fails, contains, matches, sign3, attest3, oras_push_workflow,
# copy_checks).
#   B1. ociwf publish --signature-format both: cosign v3 verifies the
#       bundles (with the signed -a dev.ociwf.reference), cosign v2 once
#       given --trusted-root, and ociwf counts the key once;
#   B2. stock cosign v3 sign/attest (bundles, offline flags) and stock
#       cosign v2 sign (legacy) of a workflow pushed with oras: ociwf
#       verify --policy passes, each signer counted once whatever formats
#       it signed in;
#   B3. ociwf publishes, a second party countersigns with stock cosign v3:
#       cosign v3 verifies with each key, ociwf verify under a 2-of-2
#       policy passes, and with either key removed fails naming the signer
#       still there;
#   B4. a stock cosign v3 signature without dev.ociwf.reference counts only
#       under signedIdentity digestOnly;
#   B5. `oras cp -r` of a bundle-only workflow to another repository
#       verifies with --signed-identity naming the original, and without it
#       fails as for legacy signatures.
# Each check works in its own repositories (bundles/...), so no bundle
# reaches a digest that the legacy checks verify with cosign v2, which fails
# offline for every key once any bundle exists (check 8).

# bundle_checks runs B1-B5 against $reg; every check must pass. (An
# earlier guard skipped them when `ociwf sign --help | grep -q` failed,
# which a SIGPIPE under pipefail could make it do by chance.)
bundle_checks() {
  bundles_both
  bundles_stock_signers
  bundles_countersign
  bundles_digest_only
  bundles_copy
}

# publish_to ref [ociwf publish flags]: publishes build-test-release.yaml
# with ociwf's key and prints repository@digest.
publish_to() {
  local ref=$1; shift
  "$ociwf" publish --plain-http --offline --key "$work/ociwf.key" "$@" \
    --source-uri git+https://example.com/acme/workflows --source-revision 0123456789abcdef0123456789abcdef01234567 \
    testdata/workflows/build-test-release.yaml "$ref" | tail -n1
}

# policy2 file scope name1 key1 name2 key2 [line]: writes a 2-of-2 trust
# policy for scope (keys relative to $work) requiring both attestations;
# line, if given, is added to the scope (e.g. a signedIdentity).
policy2() {
  cat > "$1" <<EOF
version: ociwf.dev/trust/v1
trustPolicies:
  - name: two
    registryScopes: [$2]
    signers:
      - {name: $3, key: $work/$4}
      - {name: $5, key: $work/$6}
    threshold: 2
    require:
      attestations: [slsaprovenance1, cyclonedx]
${7:+    $7}
EOF
}

# B1 (acceptance item 1 for the bundle formats).
bundles_both() {
  local both
  both=$(publish_to "$reg/bundles/both:1.4.0" --signature-format both)
  check "B1 cosign3 verify accepts an ociwf bundle signature (-a dev.ociwf.reference)" \
    cosign3 verify --key "$work/ociwf.pub" "${off[@]}" -a dev.ociwf.reference="$reg/bundles/both" -a dev.ociwf.tag=1.4.0 "$both"
  check "B1 cosign3 verify-attestation --type slsaprovenance1 (bundle)" \
    cosign3 verify-attestation --key "$work/ociwf.pub" "${off[@]}" --type slsaprovenance1 "$both"
  check "B1 cosign3 verify-attestation --type cyclonedx (bundle)" \
    cosign3 verify-attestation --key "$work/ociwf.pub" "${off[@]}" --type cyclonedx "$both"
  # cosign v2 fails offline once a bundle exists ("trusted root is
  # required when using new bundle format"); an empty trusted root is all a
  # key needs.
  check "B1 cosign v2 verify fails offline without --trusted-root" \
    rejects "trusted root is required when using new bundle format" cosign verify --key "$work/ociwf.pub" "${off[@]}" "$both"
  check "B1 cosign v2 verify --trusted-root (empty) accepts it" \
    cosign verify --key "$work/ociwf.pub" "${off[@]}" --trusted-root "$work/empty_trusted_root.json" "$both"
  check "B1 cosign v2 verify-attestation --trusted-root (empty) --type slsaprovenance1" \
    cosign verify-attestation --key "$work/ociwf.pub" "${off[@]}" --trusted-root "$work/empty_trusted_root.json" --type slsaprovenance1 "$both"
  check "B1 ociwf verify counts the key once" \
    contains "1 of 2 signature(s) valid" "$ociwf" verify --plain-http --key "$work/ociwf.pub" "$both"
}

# B2 (acceptance item 2): stock signers only, both cosign versions.
bundles_stock_signers() {
  local repo="$reg/bundles/stock3" x
  check "B2 oras push of the workflow" oras_push_workflow "$run/stock" "$repo:1.4.0"
  x="$repo@$(oras resolve --plain-http "$repo:1.4.0")"
  check "B2 cosign3 sign (bundle)" sign3 "$work/security.key" "$x" -a dev.ociwf.reference="$repo"
  check "B2 cosign3 attest --type slsaprovenance1 (bundle)" attest3 "$work/security.key" slsaprovenance1 "$run/provenance.json" "$x"
  check "B2 cosign3 attest --type cyclonedx (bundle)" attest3 "$work/security.key" cyclonedx "$run/stock/sbom.cdx.json" "$x"
  check "B2 cosign v2 sign (legacy) with the same key" cosign sign --key "$work/security.key" --tlog-upload=false "$x"
  policy2 "$run/policy-stock3.yaml" "$repo" cosign cosign.pub security security.pub
  check "B2 one signer in two formats counts once: 2-of-2 fails (exit 3, signatures)" \
    fails signatures "$ociwf" verify --plain-http --policy "$run/policy-stock3.yaml" "$x"
  check "B2 ... naming that one signer" \
    matches 'actual +1 \(security\)' "$ociwf" verify --plain-http --policy "$run/policy-stock3.yaml" "$x"
  check "B2 cosign v2 sign (legacy) by a second signer" cosign sign --key "$work/cosign.key" --tlog-upload=false "$x"
  check "B2 ociwf verify --policy 2-of-2 (cosign v3 bundles + cosign v2 legacy) passes" \
    contains "by trusted signer(s) cosign, security" "$ociwf" verify --plain-http --policy "$run/policy-stock3.yaml" "$x"
}

# B3 (acceptance item 3): ociwf publishes, a security team countersigns
# with stock cosign v3. Once a bundle exists cosign v3 reads bundles only,
# so it verifies ociwf's key with plain flags only if ociwf wrote a bundle
# too: this publishes with --signature-format both. (With the default,
# legacy, cosign v3 needs --new-bundle-format=false for ociwf's key; check 8.)
bundles_countersign() {
  local repo="$reg/bundles/mixed" x
  x=$(publish_to "$repo:1.4.0" --signature-format both)
  check "B3 cosign3 sign (bundle) countersigns" sign3 "$work/security.key" "$x" -a dev.ociwf.reference="$repo"
  check "B3 cosign3 verify with ociwf's key" cosign3 verify --key "$work/ociwf.pub" "${off[@]}" "$x"
  check "B3 cosign3 verify with the countersigner's key" cosign3 verify --key "$work/security.pub" "${off[@]}" "$x"
  check "B3 cosign3 verify-attestation with ociwf's key" \
    cosign3 verify-attestation --key "$work/ociwf.pub" "${off[@]}" --type slsaprovenance1 "$x"
  check "B3 cosign v2 verify --trusted-root (empty) with each key" \
    bash -c 'for k in "$1" "$2"; do cosign verify --key "$k" "${@:5}" --trusted-root "$3" "$4" >/dev/null || exit 1; done' \
    _ "$work/ociwf.pub" "$work/security.pub" "$work/empty_trusted_root.json" "$x" "${off[@]}"
  policy2 "$run/policy-2of2.yaml" "$repo" ociwf ociwf.pub security security.pub
  check "B3 ociwf verify 2-of-2 (ociwf + cosign v3 countersignature) passes" \
    contains "by trusted signer(s) ociwf, security" "$ociwf" verify --plain-http --policy "$run/policy-2of2.yaml" "$x"
  [[ -f $work/third.pub ]] || "$ociwf" key generate --output-key-prefix "$work/third" >/dev/null
  policy2 "$run/policy-no-security.yaml" "$repo" ociwf ociwf.pub security third.pub
  check "B3 ... with the countersigner's key removed it fails (exit 3, signatures)" \
    fails signatures "$ociwf" verify --plain-http --policy "$run/policy-no-security.yaml" "$x"
  check "B3 ... naming the signer left" \
    matches 'actual +1 \(ociwf\)' "$ociwf" verify --plain-http --policy "$run/policy-no-security.yaml" "$x"
  policy2 "$run/policy-no-ociwf.yaml" "$repo" ociwf third.pub security security.pub
  check "B3 ... with ociwf's key removed it fails (exit 3, signatures)" \
    fails signatures "$ociwf" verify --plain-http --policy "$run/policy-no-ociwf.yaml" "$x"
  check "B3 ... naming the signer left" \
    matches 'actual +1 \(security\)' "$ociwf" verify --plain-http --policy "$run/policy-no-ociwf.yaml" "$x"
}

# B4: a stock cosign v3 signature binds the digest only.
bundles_digest_only() {
  local repo="$reg/bundles/stock" x
  x=$(publish_to "$repo:1.4.0")
  check "B4 cosign3 sign without dev.ociwf.reference" sign3 "$work/security.key" "$x"
  policy2 "$run/policy-exact.yaml" "$repo" ociwf ociwf.pub security security.pub
  check "B4 ociwf verify under exact: the bundle binds only the digest (exit 3, signatures)" \
    fails signatures "$ociwf" verify --plain-http --policy "$run/policy-exact.yaml" "$x"
  policy2 "$run/policy-digest.yaml" "$repo" ociwf ociwf.pub security security.pub "signedIdentity: {type: digestOnly}"
  check "B4 ... and under signedIdentity digestOnly it counts" \
    "$ociwf" verify --plain-http --policy "$run/policy-digest.yaml" "$x"
}

# B5 (acceptance item 4, bundle half): a copy of a bundle-signed workflow.
bundles_copy() {
  publish_to "$reg/bundles/only:1.4.0" --signature-format bundle >/dev/null
  check "B5 oras cp -r of a bundle-signed workflow" \
    oras cp -r --from-plain-http --to-plain-http "$reg/bundles/only:1.4.0" "$reg/bundles/copy:1.4.0"
  copy_checks B5 "$reg/bundles/only" "$reg/bundles/copy:1.4.0"
}
