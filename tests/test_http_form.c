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
	/* an object not flat after its _content: no user, none left over
	 * (found by the fuzzer) */
	assert_int_equal(user_of("application/json",
			     "{\"account\":{\"_content\":\"a@x\",\"by\":{}}}",
			     "account", u),
	    0);
	assert_string_equal(u, "");
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

static const char *
norm(const char *path)
{
	static char out[256];

	if (http_path_normalize(path, strlen(path), out, sizeof(out)) < 0)
		return NULL;
	return out;
}

static void
test_path_normalize(void **state)
{
	(void)state;
	assert_string_equal(norm("/service/soap/AuthRequest"),
	    "/service/soap/AuthRequest");
	/* what a servlet container would match the same way */
	assert_string_equal(norm("/service/%73oap/AuthRequest"),
	    "/service/soap/AuthRequest");
	assert_string_equal(norm("/service//soap/./AuthRequest/"),
	    "/service/soap/AuthRequest");
	assert_string_equal(norm("/service/soap;jsessionid=1/x;y"),
	    "/service/soap/x");
	assert_string_equal(norm("/service/x/../soap"), "/service/soap");
	assert_string_equal(norm("/"), "/");
	assert_string_equal(norm("//./"), "/");
	assert_string_equal(norm("/;x"), "/");
	/* no honest client sends these */
	assert_null(norm("/../etc"));
	assert_null(norm("/a/../../b"));
	assert_null(norm("/a%zz"));
	assert_null(norm("/a%2"));
	assert_null(norm("/a%00b"));
	/* an escaped separator: servers and we could read it apart */
	assert_null(norm("/service/x/%2e%2e/soap"));
	assert_null(norm("/service%2fsoap"));
	assert_null(norm("/service/soap/..%3B/x"));
	/* read loosely, only to ask whether it could reach a login */
	{
		char out[256];

		assert_true(http_path_loose("/service%2fsoap", 15, out,
				sizeof(out)) > 0);
		assert_string_equal(out, "/service/soap");
		assert_true(
		    http_path_loose("/a/b/..;x/c", 11, out, sizeof(out)) > 0);
		assert_string_equal(out, "/a/c");
		assert_true(http_path_loose("/f/100%25%20done", 16, out,
				sizeof(out)) > 0);
		assert_string_equal(out, "/f/100% done");
		assert_int_equal(http_path_loose("/a%00", 5, out, sizeof(out)),
		    -1);
	}
	/* a dot segment with parameters: does it go up? */
	assert_null(norm("/service/soap/..;x/y"));
	assert_null(norm("/service/soap/.;x/y"));
	assert_null(norm("/service/soap%5c"));
	assert_null(norm("/service/soap%23"));
	assert_null(norm("/service/soap%2541"));
	assert_null(norm("relative"));
	{
		/* a NUL byte as it came (found by the fuzzer) */
		char out[16];

		assert_int_equal(http_path_normalize("/\0", 2, out,
				     sizeof(out)),
		    -1);
	}
	assert_null(norm(""));
	{
		char longpath[400];

		memset(longpath, 'a', sizeof(longpath));
		longpath[0] = '/';
		longpath[sizeof(longpath) - 1] = '\0';
		assert_null(norm(longpath));
	}
}

static int
soap(const char *body, const char *field, char *user)
{
	return http_soap_login(body, strlen(body), "AuthRequest", field, user,
	    HTTP_USER_MAX + 1);
}

static void
test_soap_login_found(void **state)
{
	char u[HTTP_USER_MAX + 1];

	(void)state;
	assert_int_equal(soap("{\"Header\":{\"context\":{\"account\":"
			      "{\"_content\":\"boss@x\"}}},\"Body\":{"
			      "\"AuthRequest\":{\"account\":{\"by\":\"name\","
			      "\"_content\":\"joe@x\"},\"password\":"
			      "{\"_content\":\"pw\"}}}}",
			     "account", u),
	    1);
	/* the account inside the AuthRequest, not the header's */
	assert_string_equal(u, "joe@x");
	assert_int_equal(soap("<soap:Envelope><soap:Header>"
			      "<context><account>boss@x</account></context>"
			      "</soap:Header><soap:Body><z:AuthRequest "
			      "xmlns:z=\"urn:zimbraAccount\"><account "
			      "by=\"name\">"
			      "ann@x</account></z:AuthRequest></soap:Body>"
			      "</soap:Envelope>",
			     "account", u),
	    1);
	assert_string_equal(u, "ann@x");
	/* in an array */
	assert_int_equal(soap("{\"Body\":{\"AuthRequest\":[{"
			      "\"name\":\"adm@x\"}]}}",
			     "name", u),
	    1);
	assert_string_equal(u, "adm@x");
	/* the name of an element, whatever its case */
	assert_int_equal(soap("<authrequest><account>c@x</account>"
			      "</authrequest>",
			     "account", u),
	    1);
}

static void
test_soap_login_none(void **state)
{
	char u[HTTP_USER_MAX + 1];

	(void)state;
	/* ordinary SOAP requests are no logins */
	assert_int_equal(soap("{\"Body\":{\"GetInfoRequest\":{}}}", "account",
			     u),
	    0);
	assert_int_equal(soap("<soap:Body><GetInfoRequest/></soap:Body>",
			     "account", u),
	    0);
	/* the word in a value or in text is no marker */
	assert_int_equal(soap("{\"Body\":{\"SaveDraftRequest\":{\"m\":"
			      "\"about AuthRequest: and <AuthRequest>\"}}}",
			     "account", u),
	    0);
	assert_int_equal(soap("<SaveDraftRequest>AuthRequest &lt;AuthRequest"
			      "</SaveDraftRequest>",
			     "account", u),
	    0);
	assert_int_equal(soap("", "account", u), 0);
	assert_string_equal(u, "");
}

static void
test_soap_login_hostile(void **state)
{
	char u[HTTP_USER_MAX + 1];

	(void)state;
	/* a key the server would decode to the marker is the marker */
	assert_int_equal(soap("{\"Body\":{\"\\u0041uth\\u0052equest\":{"
			      "\"account\":\"a@x\"}}}",
			     "account", u),
	    1);
	assert_string_equal(u, "a@x");
	/* no field this form reads: another form on the path may */
	assert_int_equal(soap("{\"\\u0041uthRequest\":{\"\\u00e1ccount\":"
			      "\"a@x\"}}",
			     "account", u),
	    2);
	/* one the server decodes to the field: which would it take? */
	assert_int_equal(soap("{\"Body\":{\"AuthRequest\":{\"account\":"
			      "\"decoy@x\",\"\\u0061ccount\":\"v@x\"}}}",
			     "account", u),
	    -1);
	assert_string_equal(u, "");
	/* two logins in one request, or two accounts in one */
	assert_int_equal(soap("{\"AuthRequest\":{\"account\":\"a@x\"},"
			      "\"AuthRequest\":{\"account\":\"b@x\"}}",
			     "account", u),
	    -1);
	assert_int_equal(soap("<AuthRequest><account>a@x</account>"
			      "<AuthRequest><account>b@x</account>",
			     "account", u),
	    -1);
	assert_int_equal(soap("<AuthRequest><account>a@x</account>"
			      "<account>b@x</account></AuthRequest>",
			     "account", u),
	    -1);
	/* a login without a user we can tell */
	assert_int_equal(soap("<AuthRequest><account>a&#64;x</account>"
			      "</AuthRequest>",
			     "account", u),
	    -1);
	assert_int_equal(soap("<AuthRequest><!-- x --><account>a@x</account>"
			      "</AuthRequest>",
			     "account", u),
	    -1);
	/* no field: 2, and the caller refuses it when no form finds one */
	assert_int_equal(soap("{\"AuthRequest\":{\"password\":\"p\"}}",
			     "account", u),
	    2);
	assert_int_equal(soap("{\"AuthRequest\":{\"account\":\"a@x\"",
			     "account", u),
	    -1);
	assert_int_equal(soap("</AuthRequest><AuthRequest><account>a@x"
			      "</account>",
			     "account", u),
	    -1);
	/* an end tag inside the start tag (found by the fuzzer) */
	assert_int_equal(soap("<AuthRequest x</AuthRequest><account>a@x"
			      "</account>",
			     "account", u),
	    -1);
	/* '<' in an attribute value is not XML */
	assert_int_equal(soap("<AuthRequest x=\"</AuthRequest>\"><account>"
			      "a@x</account></AuthRequest>",
			     "account", u),
	    -1);
	/* UTF-16: the server could read what we cannot */
	{
		static const char utf16[] = "<\0A\0u\0t\0h\0";

		assert_int_equal(http_soap_login(utf16, sizeof(utf16) - 1,
				     "AuthRequest", "account", u, sizeof(u)),
		    -1);
	}
	/* an unended string: nothing read past the body */
	assert_int_equal(soap("{\"AuthRequest", "account", u), -1);
}

/*
 * Zimbra's JSON parser takes more than JSON: whatever is not strict JSON
 * is refused, login or not (found by a hostile review).
 */
static void
test_soap_json_dialects(void **state)
{
	char u[HTTP_USER_MAX + 1];

	(void)state;
	assert_int_equal(soap("{'Body':{'AuthRequest':{'account':'v@x'}}}",
			     "account", u),
	    -1);
	assert_int_equal(soap("{Body:{AuthRequest:{account:v@x}}}", "account",
			     u),
	    -1);
	assert_int_equal(soap("{\"Body\":{\"\\x41uthRequest\":{}}}", "account",
			     u),
	    -1);
	assert_int_equal(soap("{\"Body\":{\"\\AuthRequest\":{}}}", "account",
			     u),
	    -1);
	assert_int_equal(soap("{\"Body\"=>{\"AuthRequest\"=>{}}}", "account",
			     u),
	    -1);
	assert_int_equal(soap("\x0b{\"Body\":{\"AuthRequest\":{}}}", "account",
			     u),
	    -1);
	assert_int_equal(soap("{\"AuthRequest\"\x0c:{\"account\":\"v@x\"}}",
			     "account", u),
	    -1);
	assert_int_equal(soap("{\"a\":1,}", "account", u), -1);
	assert_int_equal(soap("{\"a\":01}", "account", u), -1);
	/* the server keeps the last _content: which is the user? */
	assert_int_equal(soap("{\"AuthRequest\":{\"account\":{\"_content\":"
			      "\"decoy@x\",\"_content\":\"v@x\"}}}",
			     "account", u),
	    -1);
	/* strict JSON without a login is an ordinary request */
	assert_int_equal(soap("{\"Body\":{\"NoOpRequest\":{\"n\":-1.5e3,"
			      "\"t\":true,\"l\":[null,\"\\u00e9\\n\"]}}}",
			     "account", u),
	    0);
	assert_int_equal(soap("[]", "account", u), 0);
	assert_int_equal(http_soap_login("", 0, "AuthRequest", "account", u,
			     sizeof(u)),
	    0);
}

/* XML read tag by tag, attributes quoted (found by a hostile review). */
static void
test_soap_xml_tags(void **state)
{
	char u[HTTP_USER_MAX + 1];

	(void)state;
	/* a '>' inside an attribute value does not end the tag */
	assert_int_equal(soap("<AuthRequest><account by=\"name\" x=\">1\">"
			      "v@x</account></AuthRequest>",
			     "account", u),
	    1);
	assert_string_equal(u, "v@x");
	/* white space of any kind ends a name */
	assert_int_equal(soap("<AuthRequest><x><account>decoy@x</account></x>"
			      "<account\tby=\"name\">v@x</account>"
			      "</AuthRequest>",
			     "account", u),
	    -1);
	/* processing instructions: hidden end tags, split text */
	assert_int_equal(soap("<AuthRequest><?x </AuthRequest>?><account>"
			      "v@x</account></AuthRequest>",
			     "account", u),
	    -1);
	assert_int_equal(soap("<AuthRequest><account>vi<?x?>ctim@x</account>"
			      "</AuthRequest>",
			     "account", u),
	    -1);
	/* the admin console's name as an attribute, read first by Zimbra */
	assert_int_equal(soap("<AuthRequest xmlns=\"urn:zimbraAdmin\" "
			      "name=\"admin@x\" password=\"p\"/>",
			     "name", u),
	    1);
	assert_string_equal(u, "admin@x");
	assert_int_equal(soap("<AuthRequest name=\"admin@x\"><x><name>"
			      "decoy@x</name></x></AuthRequest>",
			     "name", u),
	    -1);
	/* comments and CDATA are opaque: no login inside, text as text */
	assert_int_equal(soap("<SaveDraftRequest><!-- <AuthRequest> --><m>"
			      "<![CDATA[a < b <AuthRequest>]]></m>"
			      "</SaveDraftRequest>",
			     "account", u),
	    0);
	assert_int_equal(soap("<x><!-- unended <AuthRequest>", "account", u),
	    -1);
	assert_int_equal(soap("<!DOCTYPE x [<!ENTITY a \"b\">]><x/>", "account",
			     u),
	    -1);
	/* encodings: one we read as the server does, or refused */
	assert_int_equal(soap("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
			      "<AuthRequest><account>a@x</account>"
			      "</AuthRequest>",
			     "account", u),
	    1);
	assert_int_equal(soap("<?xml version=\"1.0\" encoding=\"IBM037\"?>"
			      "\x4c\xc1\xa4\xa3\x88\xd9",
			     "account", u),
	    -1);
	/* a login with a token has no password to count */
	assert_int_equal(soap("<AuthRequest><authToken>0_ab</authToken>"
			      "<twoFactorCode>123456</twoFactorCode>"
			      "</AuthRequest>",
			     "account", u),
	    0);
	assert_int_equal(soap("{\"Body\":{\"AuthRequest\":{\"authToken\":"
			      "{\"_content\":\"0_ab\"},\"twoFactorCode\":"
			      "\"123456\"}}}",
			     "account", u),
	    0);
	/* neither user nor token: a login without this form's field */
	assert_int_equal(soap("<AuthRequest><password>p</password>"
			      "</AuthRequest>",
			     "account", u),
	    2);
	/*
	 * Second review: a batch (answered 200 whatever the login's
	 * fate), a field there but unreadable beside a token.
	 */
	assert_int_equal(soap("{\"Body\":{\"BatchRequest\":{\"AuthRequest\":"
			      "{\"account\":\"v@x\",\"password\":\"g\"}}}}",
			     "account", u),
	    -1);
	assert_int_equal(soap("<BatchRequest><AuthRequest><account>v@x"
			      "</account></AuthRequest></BatchRequest>",
			     "account", u),
	    -1);
	assert_int_equal(soap("{\"Body\":{\"AuthRequest\":{\"account\":{"
			      "\"_content\":\"v@x\",\"x\":1},\"password\":"
			      "\"g\",\"jwtToken\":{\"_content\":\"z\"}}}}",
			     "account", u),
	    -1);
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
	    cmocka_unit_test(test_path_normalize),
	    cmocka_unit_test(test_soap_login_found),
	    cmocka_unit_test(test_soap_login_none),
	    cmocka_unit_test(test_soap_login_hostile),
	    cmocka_unit_test(test_soap_json_dialects),
	    cmocka_unit_test(test_soap_xml_tags),
	};

	return cmocka_run_group_tests_name("http_form", tests, NULL, NULL);
}
