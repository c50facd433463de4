# Sigstore bundle checks for scripts/interop.sh, which sources this file
# and calls bundle_checks after its own checks, with $ociwf, $reg, $work,
# the keys $work/ociwf.* and $work/cosign.*, and its check helpers.
#   B1. ociwf publish --signature-format both: cosign v3 verifies the
#       bundles (with the signed -a dev.ociwf.reference), cosign v2 the
#       legacy signature once given --trusted-root, and ociwf counts the
#       key once;
#   B2. stock cosign v3 countersigns (bundle, offline flags) an ociwf
#       publication: cosign v3 verifies the countersignature; ociwf verify
#       under a 2-of-2 policy passes, and with the countersigner's key
#       removed fails naming it;
#   B3. a stock cosign v3 signature without dev.ociwf.reference counts only
#       under signedIdentity digestOnly;
#   B4. `oras cp -r` of a bundle-only workflow to another repository
#       verifies with --signed-identity naming the original, and without it
#       fails as for legacy signatures.

bundle_checks() {
  local cosign3 off pinned both
  cosign3=$(command -v cosign3)
  off=(--use-signing-config=false --tlog-upload=false --allow-http-registry --allow-insecure-registry)
  printf '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}\n' > "$work/empty_trusted_root.json"

  # B1
  both=$("$ociwf" publish --plain-http --offline --key "$work/ociwf.key" --signature-format both \
    --source-uri git+https://example.com/acme/workflows --source-revision 0123456789abcdef0123456789abcdef01234567 \
    testdata/workflows/build-test-release.yaml "$reg/bundles/both:1.4.0" | tail -n1)
  check "B1 cosign v3 verify accepts an ociwf bundle signature (-a dev.ociwf.reference)" \
    "$cosign3" verify --key "$work/ociwf.pub" --insecure-ignore-tlog --allow-http-registry --allow-insecure-registry \
    -a dev.ociwf.reference="$reg/bundles/both" -a dev.ociwf.tag=1.4.0 "$both"
  check "B1 cosign v3 verify-attestation --type slsaprovenance1 (bundle)" \
    "$cosign3" verify-attestation --key "$work/ociwf.pub" --insecure-ignore-tlog --allow-http-registry --allow-insecure-registry --type slsaprovenance1 "$both"
  check "B1 cosign v3 verify-attestation --type cyclonedx (bundle)" \
    "$cosign3" verify-attestation --key "$work/ociwf.pub" --insecure-ignore-tlog --allow-http-registry --allow-insecure-registry --type cyclonedx "$both"
  check "B1 cosign v2 verify --trusted-root accepts it" \
    cosign verify --key "$work/ociwf.pub" --insecure-ignore-tlog --trusted-root "$work/empty_trusted_root.json" "$both"
  check "B1 ociwf verify counts the key once" \
    contains "1 of 2 signature(s) valid" "$ociwf" verify --plain-http --key "$work/ociwf.pub" "$both"

  # B2: the default (legacy) publication, countersigned with stock cosign v3.
  pinned=$("$ociwf" publish --plain-http --offline --key "$work/ociwf.key" \
    --source-uri git+https://example.com/acme/workflows --source-revision 0123456789abcdef0123456789abcdef01234567 \
    testdata/workflows/build-test-release.yaml "$reg/bundles/mixed:1.4.0" | tail -n1)
  check "B2 cosign v3 sign (bundle) countersigns" \
    "$cosign3" sign --key "$work/cosign.key" "${off[@]}" -a dev.ociwf.reference="$reg/bundles/mixed" "$pinned"
  check "B2 cosign v3 verifies the countersignature" \
    "$cosign3" verify --key "$work/cosign.pub" --insecure-ignore-tlog --allow-http-registry --allow-insecure-registry "$pinned"
  check "B2 cosign v3 verifies ociwf's legacy signature with --new-bundle-format=false" \
    "$cosign3" verify --key "$work/ociwf.pub" --insecure-ignore-tlog --allow-http-registry --allow-insecure-registry --new-bundle-format=false "$pinned"
  cat > "$work/policy-2of2.yaml" <<EOF
version: ociwf.dev/trust/v1
trustPolicies:
  - name: mixed
    registryScopes: [$reg/bundles/mixed, $reg/bundles/stock]
    signers:
      - {name: ociwf, key: ociwf.pub}
      - {name: security, key: cosign.pub}
    threshold: 2
    require:
      attestations: [slsaprovenance1, cyclonedx]
EOF
  check "B2 ociwf verify 2-of-2 (legacy + cosign v3 bundle) passes" \
    contains "by trusted signer(s) ociwf, security" "$ociwf" verify --plain-http --policy "$work/policy-2of2.yaml" "$pinned"
  "$ociwf" key generate --output-key-prefix "$work/third" >/dev/null
  sed 's/- {name: security, key: cosign.pub}/- {name: security, key: third.pub}/' "$work/policy-2of2.yaml" > "$work/policy-1key.yaml"
  check "B2 ... and with the countersigner's key removed it fails (exit 3, signatures)" \
    fails signatures "$ociwf" verify --plain-http --policy "$work/policy-1key.yaml" "$pinned"
  check "B2 ... naming the signer missing" \
    contains "expected         2 of ociwf, security" bash -c '"$1" verify --plain-http --policy "$2" "$3" || true' _ "$ociwf" "$work/policy-1key.yaml" "$pinned"

  # B3: a stock cosign v3 signature binds the digest only.
  local stock
  stock=$("$ociwf" publish --plain-http --offline --key "$work/ociwf.key" \
    --source-uri git+https://example.com/acme/workflows --source-revision 0123456789abcdef0123456789abcdef01234567 \
    testdata/workflows/build-test-release.yaml "$reg/bundles/stock:1.4.0" | tail -n1)
  check "B3 cosign v3 sign without dev.ociwf.reference" "$cosign3" sign --key "$work/cosign.key" "${off[@]}" "$stock"
  check "B3 ociwf verify under exact: the bundle binds only the digest (exit 3, signatures)" \
    fails signatures "$ociwf" verify --plain-http --policy "$work/policy-2of2.yaml" "$stock"
  sed 's/    threshold: 2/    threshold: 2\n    signedIdentity: {type: digestOnly}/' "$work/policy-2of2.yaml" > "$work/policy-digest.yaml"
  check "B3 ... and under signedIdentity digestOnly it counts" \
    "$ociwf" verify --plain-http --policy "$work/policy-digest.yaml" "$stock"

  # B4: a copy of a bundle-signed workflow.
  local only
  only=$("$ociwf" publish --plain-http --offline --key "$work/ociwf.key" --signature-format bundle \
    --source-uri git+https://example.com/acme/workflows --source-revision 0123456789abcdef0123456789abcdef01234567 \
    testdata/workflows/build-test-release.yaml "$reg/bundles/only:1.4.0" | tail -n1)
  check "B4 oras cp -r of a bundle-signed workflow" oras cp -r --from-plain-http --to-plain-http "$reg/bundles/only:1.4.0" "$reg/bundles/copy:1.4.0"
  check "B4 the copy verifies with ociwf, naming the original repository" \
    "$ociwf" verify --plain-http --key "$work/ociwf.pub" --signed-identity "$reg/bundles/only" --require-signed-tag "$reg/bundles/copy:1.4.0"
  check "B4 ... and without --signed-identity it is a replay across repositories (exit 3, signatures)" \
    fails signatures "$ociwf" verify --plain-http --key "$work/ociwf.pub" "$reg/bundles/copy:1.4.0"
}
