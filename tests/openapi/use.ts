// What an integrator writes against the generated types: it must type-check under --strict.
import type { components, paths } from "./steward";

type User = components["schemas"]["UserView"];
type Problem = components["schemas"]["Problem"];
type Login = paths["/api/v1/auth/login"]["post"];
type LicensePatch = paths["/api/v1/orgs/{id}/license"]["patch"]["requestBody"];

export function greet(user: User): string {
  return `${user.name} <${user.email}>`;
}

export function explain(problem: Problem): string {
  return `${problem.code}: ${problem.detail} (request ${problem.request_id ?? "unknown"})`;
}

export const seats: NonNullable<LicensePatch>["content"]["application/json"] = { users: 10 };
export type LoginAnswer = Login["responses"][200]["content"]["application/json"];
