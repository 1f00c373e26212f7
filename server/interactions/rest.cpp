#include "server/interactions/rest.hpp"

namespace kasama::server {

const std::string* RestRequest::header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return &v;
  }
  return nullptr;
}

const std::string* RestRequest::param(std::string_view name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return &v;
  }
  return nullptr;
}

std::string RestRequest::path() const {
  std::string p;
  for (const auto& s : segments) {
    if (!p.empty()) p.push_back('/');
    p += s;
  }
  return p;
}

std::string status_text(int status) {
  switch (status) {
    case 200:
      return "200 OK";
    case 201:
      return "201 Created";
    case 204:
      return "204 No Content";
    case 304:
      return "304 Not Modified";
    case 400:
      return "400 Bad Request";
    case 401:
      return "401 Unauthorized";
    case 403:
      return "403 Forbidden";
    case 404:
      return "404 Not Found";
    case 405:
      return "405 Method Not Allowed";
    case 406:
      return "406 Not Acceptable";
    case 409:
      return "409 Conflict";
    case 410:
      return "410 Gone";
    case 412:
      return "412 Precondition Failed";
    case 413:
      return "413 Payload Too Large";
    case 415:
      return "415 Unsupported Media Type";
    case 422:
      return "422 Unprocessable Entity";
    case 500:
      return "500 Internal Server Error";
    case 503:
      return "503 Service Unavailable";
    default:
      return std::to_string(status);
  }
}

namespace {
std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

ReturnPref return_preference(const RestRequest& req) {
  const std::string* p = req.header("prefer");
  if (!p) return ReturnPref::kDefault;
  std::string v = lower(*p);
  if (v.find("return=minimal") != std::string::npos) return ReturnPref::kMinimal;
  if (v.find("return=representation") != std::string::npos) return ReturnPref::kRepresentation;
  if (v.find("return=operationoutcome") != std::string::npos) return ReturnPref::kOutcome;
  return ReturnPref::kDefault;
}

bool lenient_handling(const RestRequest& req) {
  const std::string* p = req.header("prefer");
  return p && lower(*p).find("handling=lenient") != std::string::npos;
}

std::string outcome_json(const std::vector<Issue>& issues) {
  Json oo = {{"resourceType", "OperationOutcome"}};
  Json arr = Json::array();
  for (const auto& i : issues) {
    Json issue = {{"severity", i.severity}, {"code", i.code.empty() ? "processing" : i.code}};
    // Diagnostics quote what the client sent, which may be any bytes.
    if (!i.diagnostics.empty()) issue["diagnostics"] = resources::sanitize_utf8(i.diagnostics);
    if (!i.expression.empty()) issue["expression"] = Json::array({resources::sanitize_utf8(i.expression)});
    arr.push_back(std::move(issue));
  }
  if (arr.empty()) arr.push_back({{"severity", "information"}, {"code", "informational"}});
  oo["issue"] = std::move(arr);
  return resources::dump_json(oo);
}

std::string outcome_json(const std::string& severity, const std::string& code, const std::string& diagnostics,
                         const std::string& expression) {
  return outcome_json(std::vector<Issue>{Issue{severity, code, diagnostics, expression}});
}

}  // namespace kasama::server
