/* daemon/tls: who a peer certificate names (issue 9 #12).  The identity
 * is the one subjectAltName DNS entry, at its full length (a NUL inside is
 * refused, not cut), and a common name must say exactly the same. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "daemon/tls.h"

/* A certificate with the given CN (cnlen bytes, none if NULL) and DNS
 * names (each dnslen[i] bytes); unsigned: only names matter here. */
static X509 *
make(const char *cn, int cnlen, const char *const *dns, const int *dnslen,
    int ndns)
{
	X509		*x = X509_new();
	X509_NAME	*name = X509_NAME_new();
	GENERAL_NAMES	*gens;
	GENERAL_NAME	*g;
	ASN1_IA5STRING	*ia5;
	int		 i;

	assert_non_null(x);
	if (cn != NULL)
		assert_int_equal(X509_NAME_add_entry_by_NID(name,
		    NID_commonName, MBSTRING_ASC, (const unsigned char *)cn,
		    cnlen, -1, 0), 1);
	X509_set_subject_name(x, name);
	X509_NAME_free(name);
	if (ndns > 0) {
		gens = sk_GENERAL_NAME_new_null();
		for (i = 0; i < ndns; i++) {
			g = GENERAL_NAME_new();
			ia5 = ASN1_IA5STRING_new();
			ASN1_STRING_set(ia5, dns[i], dnslen[i]);
			GENERAL_NAME_set0_value(g, GEN_DNS, ia5);
			sk_GENERAL_NAME_push(gens, g);
		}
		assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name,
		    gens, 0, X509V3_ADD_DEFAULT), 1);
		GENERAL_NAMES_free(gens);
	}
	return x;
}

static void
expect(X509 *x, const char *want, const char *cause_part)
{
	char	*cause = NULL, *id;

	id = tls_cert_identity(x, &cause);
	if (want != NULL) {
		if (id == NULL)
			fail_msg("refused: %s", cause);
		assert_string_equal(id, want);
	} else {
		if (id != NULL)
			fail_msg("accepted as %s", id);
		assert_non_null(cause);
		if (strstr(cause, cause_part) == NULL)
			fail_msg("cause \"%s\" lacks \"%s\"", cause, cause_part);
	}
	free(id);
	free(cause);
	X509_free(x);
}

static void
test_identity(void **state)
{
	const char	*h2[] = { "h2" }, *two[] = { "h2", "h3" };
	const char	*nul[] = { "h2\0evil" }, *bad[] = { "H2" };
	const int	 l2[] = { 2 }, l22[] = { 2, 2 }, lnul[] = { 7 };

	(void)state;
	/* What ternctl cert issue makes: CN and SAN alike. */
	expect(make("h2", -1, h2, l2, 1), "h2", NULL);
	/* SAN alone is enough. */
	expect(make(NULL, 0, h2, l2, 1), "h2", NULL);
	/* CN alone, as accept used to take: refused. */
	expect(make("h2", -1, NULL, NULL, 0), NULL, "names no host");
	expect(make("h2", -1, two, l22, 2), NULL, "more than one");
	/* A CN that says another host than the SAN. */
	expect(make("h3", -1, h2, l2, 1), NULL, "common name differs");
	/* NUL inside the CN: "h2" up to the NUL used to be the identity. */
	expect(make("h2\0evil", 7, h2, l2, 1), NULL, "common name differs");
	/* NUL inside the SAN. */
	expect(make(NULL, 0, nul, lnul, 1), NULL, "byte 0x00");
	expect(make(NULL, 0, bad, l2, 1), NULL, "not a host name");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
