/*
 * http_form_user(): the user of a webmail form login, from a form, a
 * JSON SOAP AuthRequest or an XML one, and nothing from anything odd.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "http.h"

static int
user_of(const char *ctype, const char *body, const char *field, char *user)
{
	return http_form_user(ctype, strlen(ctype), body, strlen(body), field,
	    user, HTTP_USER_MAX + 1);
}

static void
test_form(void **state)
{
	char u[HTTP_USER_MAX + 1];

	(void)state;
	assert_int_equal(user_of("application/x-www-form-urlencoded",
			     "loginOp=login&username=joe%40example.org&"
			     "password=secret&client=preferred",
			     "username", u),
	    1);
	assert_string_equal(u, "joe@example.org");
	/* charset parameter, '+' is a space (and a space is no name) */
	assert_int_equal(user_of("application/x-www-form-urlencoded; "
				 "charset=UTF-8",
			     "username=a+b&password=x", "username", u),
	    0);
	assert_string_equal(u, "");
	/* a field whose name only starts like it */
	assert_int_equal(user_of("application/x-www-form-urlencoded",
			     "usernamex=joe&username=ann", "username", u),
	    1);
	assert_string_equal(u, "ann");
	assert_int_equal(user_of("application/x-www-form-urlencoded",
			     "password=x", "username", u),
	    0);
	assert_int_equal(user_of("application/x-www-form-urlencoded",
			     "username=%zz", "username", u),
	    -1);
	assert_int_equal(user_of("application/x-www-form-urlencoded",
			     "username=", "username", u),
	    0);
	assert_int_equal(user_of("application/x-www-form-urlencoded",
			     "username=a%00b", "username", u),
	    0);
}

static void
test_json(void **state)
{
	char u[HTTP_USER_MAX + 1];

	(void)state;
	assert_int_equal(user_of("application/soap+json",
			     "{\"Body\":{\"AuthRequest\":{\"_jsns\":"
			     "\"urn:zimbraAccount\",\"account\":{\"by\":"
			     "\"name\",\"_content\":\"joe@example.org\"},"
			     "\"password\":{\"_content\":\"secret\"}}}}",
			     "account", u),
	    1);
	assert_string_equal(u, "joe@example.org");
	assert_int_equal(user_of("application/json",
			     "{ \"account\" : \"ann@example.org\" }", "account",
			     u),
	    1);
	assert_string_equal(u, "ann@example.org");
	/* escapes are not followed, nor nested objects */
	assert_int_equal(user_of("application/json",
			     "{\"account\":\"a\\u0040b\"}", "account", u),
	    0);
	assert_int_equal(user_of("application/json",
			     "{\"account\":{\"x\":{\"_content\":\"a\"}}}",
			     "account", u),
	    0);
	/* cut short anywhere: nothing, never past the end */
	assert_int_equal(user_of("application/json", "{\"account\":{\"_con",
			     "account", u),
	    0);
	assert_int_equal(user_of("application/json", "{\"account\"", "account",
			     u),
	    0);
	assert_int_equal(user_of("application/json",
			     "{\"account\":\"unterminated", "account", u),
	    0);
}

static void
test_xml(void **state)
{
	char u[HTTP_USER_MAX + 1];

	(void)state;
	assert_int_equal(user_of("application/soap+xml; charset=utf-8",
			     "<soap:Envelope><soap:Body><AuthRequest "
			     "xmlns=\"urn:zimbraAccount\"><account by=\"name\">"
			     "joe@example.org</account><password>secret"
			     "</password></AuthRequest></soap:Body>"
			     "</soap:Envelope>",
			     "account", u),
	    1);
	assert_string_equal(u, "joe@example.org");
	assert_int_equal(user_of("text/xml",
			     "<z:account>ann@example.org</z:account>",
			     "account", u),
	    1);
	assert_string_equal(u, "ann@example.org");
	/* entities, self-closing, unterminated: nothing */
	assert_int_equal(user_of("text/xml", "<account>a&#64;b</account>",
			     "account", u),
	    0);
	assert_int_equal(user_of("text/xml", "<account/>", "account", u), 0);
	assert_int_equal(user_of("text/xml", "<account>abc", "account", u), 0);
	assert_int_equal(user_of("text/xml", "<accounts>abc</accounts>",
			     "account", u),
	    0);
}

/* Two of the field: which would the server read?  Refused. */
static void
test_decoys(void **state)
{
	char u[HTTP_USER_MAX + 1];

	(void)state;
	assert_int_equal(user_of("application/x-www-form-urlencoded",
			     "username=decoy&username=kate%40x", "username", u),
	    -1);
	/* a name encoded is the same name to a servlet */
	assert_int_equal(user_of("application/x-www-form-urlencoded",
			     "user%6Eame=kate%40x&username=decoy", "username",
			     u),
	    -1);
	assert_int_equal(user_of("application/json",
			     "{\"Header\":{\"context\":{\"account\":"
			     "\"decoy\"}},\"Body\":{\"AuthRequest\":{"
			     "\"account\":\"kate@x\"}}}",
			     "account", u),
	    -1);
	assert_int_equal(user_of("text/xml",
			     "<soap:Header><!-- <account>decoy</account> -->"
			     "</soap:Header><account>kate@x</account>",
			     "account", u),
	    -1);
	assert_int_equal(user_of("text/xml",
			     "<account>decoy</account><account>kate@x"
			     "</account>",
			     "account", u),
	    -1);
	assert_string_equal(u, "");
}

static void
test_other_types(void **state)
{
	char u[HTTP_USER_MAX + 1];

	(void)state;
	assert_int_equal(user_of("text/plain", "username=joe", "username", u),
	    0);
	assert_int_equal(user_of("", "username=joe", "username", u), 0);
	/* a type that only starts like a known one */
	assert_int_equal(user_of("application/jsonx", "{\"account\":\"a\"}",
			     "account", u),
	    0);
	/* a name longer than a user may be */
	{
		char body[600];

		memset(body, 'a', sizeof(body));
		memcpy(body, "username=", 9);
		body[sizeof(body) - 1] = '\0';
		assert_int_equal(user_of("application/x-www-form-urlencoded",
				     body, "username", u),
		    0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_form),
	    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_xml),
	    cmocka_unit_test(test_decoys),
	    cmocka_unit_test(test_other_types),
	};

	return cmocka_run_group_tests_name("http_form", tests, NULL, NULL);
}
