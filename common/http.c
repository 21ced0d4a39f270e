/*
 * What both HTTP sides share: field-name and list matching, status
 * texts and the short error pages postern answers with itself.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"

int
http_is_tchar(unsigned char ch)
{
	if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= 'A' && ch <= 'Z'))
		return 1;
	return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

int
http_is_ws(unsigned char ch)
{
	return ch == ' ' || ch == '\t';
}

int
http_field_is(const struct http_field *f, const char *name)
{
	return f->namelen == strlen(name) &&
	    strncasecmp(f->name, name, f->namelen) == 0;
}

/* A comma-separated list of tokens, with optional whitespace around. */
int
http_list_has(const char *value, size_t len, const char *token)
{
	size_t tlen = strlen(token), i = 0, start, end;

	while (i < len) {
		while (i < len &&
		    (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
			i++;
		start = i;
		while (i < len && value[i] != ',')
			i++;
		end = i;
		while (end > start &&
		    (value[end - 1] == ' ' || value[end - 1] == '\t'))
			end--;
		if (end - start == tlen &&
		    strncasecmp(value + start, token, tlen) == 0)
			return 1;
	}
	return 0;
}

const char *
http_status_text(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 203:
		return "Non-Authoritative Information";
	case 204:
		return "No Content";
	case 205:
		return "Reset Content";
	case 206:
		return "Partial Content";
	case 207:
		return "Multi-Status";
	case 208:
		return "Already Reported";
	case 300:
		return "Multiple Choices";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 307:
		return "Temporary Redirect";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 402:
		return "Payment Required";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 406:
		return "Not Acceptable";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 411:
		return "Length Required";
	case 412:
		return "Precondition Failed";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 416:
		return "Range Not Satisfiable";
	case 417:
		return "Expectation Failed";
	case 421:
		return "Misdirected Request";
	case 422:
		return "Unprocessable Content";
	case 423:
		return "Locked";
	case 424:
		return "Failed Dependency";
	case 428:
		return "Precondition Required";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 449:
		return "Retry With";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	case 507:
		return "Insufficient Storage";
	default:
		return "Error";
	}
}

/*
 * A page of postern's own: it names no host and no upstream, only the
 * status.  extra_fields, if any, are whole "Name: value\r\n" lines.
 */
int
http_error_page(char *out, size_t outsz, int status, int close,
    const char *extra_fields)
{
	char body[256];
	const char *text = http_status_text(status);
	int blen, n;

	blen = snprintf(body, sizeof(body),
	    "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>"
	    "<body><h1>%d %s</h1></body></html>\n",
	    status, text, status, text);
	if (blen < 0 || (size_t)blen >= sizeof(body))
		return -1;
	n = snprintf(out, outsz,
	    "HTTP/1.1 %d %s\r\n"
	    "Content-Type: text/html; charset=utf-8\r\n"
	    "Content-Length: %d\r\n"
	    "Cache-Control: no-store\r\n"
	    "%s%s\r\n%s",
	    status, text, blen, close ? "Connection: close\r\n" : "",
	    extra_fields != NULL ? extra_fields : "", body);
	if (n < 0 || (size_t)n >= outsz)
		return -1;
	return n;
}
