"""The gRPC face of the auth service: protobuf in, service calls, protobuf out.

GetJwks, IssueToken, RevokeTokens, IntrospectToken and RotateSigningKey go to the
`TokenService`; Check and BatchCheck to the `DecisionService`; the tenant, user, service
account and role methods to the `AdminService`, each of which authorises the caller
(`current_principal().subject`) itself. Errors are raised as mainmast errors and turned
into rich statuses by the runtime's ErrorInterceptor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc.aio
import orjson
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from mainmast.auth import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.auth.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    resources_pb2,
)
from mainmast.errors import ValidationError
from mainmast.runtime import current_principal

from ._admin_service import AdminService, ListPage, RoleAssignment, RolePermission
from ._decision_service import CheckQuestion, DecisionService
from ._keys import SigningKey
from ._login_throttle import LoginOrigin
from ._models import ServiceAccountRow, State, TenantRow, UserRow
from ._token_service import ActiveRefreshToken, IssuedTokens, TokenService

_Context = grpc.aio.ServicerContext[Any, Any]
_MAX_REASON_CHARS = 256

# RFC 7517/7518 member names -> JsonWebKey fields.
_JWK_FIELDS = {
    "kty": "key_type",
    "kid": "key_id",
    "use": "use",
    "alg": "algorithm",
    "crv": "curve",
    "x": "x",
    "y": "y",
    "n": "modulus",
    "e": "exponent",
}


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _json_web_key(jwk: dict[str, str]) -> resources_pb2.JsonWebKey:
    return resources_pb2.JsonWebKey(
        **{_JWK_FIELDS[name]: value for name, value in jwk.items() if name in _JWK_FIELDS}
    )


def _signing_key(key: SigningKey) -> resources_pb2.SigningKey:
    message = resources_pb2.SigningKey(
        name=f"signingKeys/{key.key_id}",
        key_id=key.key_id,
        algorithm=key.algorithm.value,
        state=(
            resources_pb2.SigningKey.STATE_ACTIVE
            if key.retire_time is None
            else resources_pb2.SigningKey.STATE_RETIRED
        ),
        create_time=_timestamp(key.create_time),
    )
    if key.is_published:
        message.public_key.CopyFrom(_json_web_key(key.public_jwk()))
    if key.retire_time is not None:
        message.retire_time.CopyFrom(_timestamp(key.retire_time))
    if key.expire_time is not None:
        message.expire_time.CopyFrom(_timestamp(key.expire_time))
    return message


def _issue_response(issued: IssuedTokens) -> auth_service_pb2.IssueTokenResponse:
    access = issued.access
    response = auth_service_pb2.IssueTokenResponse(
        access_token=access.token,
        token_type="Bearer",  # noqa: S106 -- the RFC 6750 token type, not a secret
        expire_time=_timestamp(access.expire_time),
        scopes=access.scopes,
        token_id=access.token_id,
        subject=access.subject,
        tenant=access.tenant,
    )
    if issued.refresh_token is not None and issued.refresh_expire_time is not None:
        response.refresh_token = issued.refresh_token
        response.refresh_token_expire_time.CopyFrom(_timestamp(issued.refresh_expire_time))
    return response


def _tenant(row: TenantRow) -> resources_pb2.Tenant:
    return resources_pb2.Tenant(
        name=row.name,
        display_name=row.display_name,
        state=(
            resources_pb2.Tenant.STATE_ACTIVE
            if row.state == State.ACTIVE.value
            else resources_pb2.Tenant.STATE_DISABLED
        ),
        create_time=_timestamp(row.create_time),
        update_time=_timestamp(row.update_time),
    )


def _user(row: UserRow) -> resources_pb2.User:
    return resources_pb2.User(
        name=row.name,
        uid=row.uid,
        display_name=row.display_name,
        email=row.email,
        state=(
            resources_pb2.User.STATE_ACTIVE
            if row.state == State.ACTIVE.value
            else resources_pb2.User.STATE_DISABLED
        ),
        create_time=_timestamp(row.create_time),
        update_time=_timestamp(row.update_time),
    )


def _service_account(row: ServiceAccountRow) -> resources_pb2.ServiceAccount:
    return resources_pb2.ServiceAccount(
        name=row.name,
        uid=row.uid,
        display_name=row.display_name,
        description=row.description,
        client_id=row.client_id,
        state=(
            resources_pb2.ServiceAccount.STATE_ACTIVE
            if row.state == State.ACTIVE.value
            else resources_pb2.ServiceAccount.STATE_DISABLED
        ),
        create_time=_timestamp(row.create_time),
        update_time=_timestamp(row.update_time),
    )


def _role_assignment(assignment: RoleAssignment) -> resources_pb2.RoleAssignment:
    message = resources_pb2.RoleAssignment(principal=assignment.principal, role=assignment.role)
    # Unset for assignments stored before the store kept their time.
    if assignment.create_time is not None:
        message.create_time.CopyFrom(_timestamp(assignment.create_time))
    return message


def _role_permission(grant: RolePermission) -> resources_pb2.RolePermission:
    message = resources_pb2.RolePermission(role=grant.role, permission=grant.permission)
    if grant.create_time is not None:
        message.create_time.CopyFrom(_timestamp(grant.create_time))
    return message


def _question(request: auth_service_pb2.CheckRequest) -> CheckQuestion:
    return CheckQuestion(request.principal, request.tenant, request.permission)


def _caller() -> str:
    return current_principal().subject


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):
    """`mainmast.auth.v1.AuthService` over the token, decision and admin services."""

    def __init__(
        self, tokens: TokenService, *, decisions: DecisionService, admin: AdminService
    ) -> None:
        self._tokens = tokens
        self._decisions = decisions
        self._admin = admin

    async def GetJwks(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.GetJwksRequest, context: _Context
    ) -> auth_service_pb2.GetJwksResponse:
        """Every public key that still verifies, active first, as messages and as JSON."""
        ring, now = await self._tokens.jwks()
        document = ring.jwks(now)
        max_age = Duration()
        max_age.FromTimedelta(self._tokens.jwks_max_age)
        return auth_service_pb2.GetJwksResponse(
            keys=[_json_web_key(jwk) for jwk in document["keys"]],
            json_document=orjson.dumps(document).decode(),
            max_age=max_age,
        )

    async def IssueToken(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.IssueTokenRequest, context: _Context
    ) -> auth_service_pb2.IssueTokenResponse:
        """Issue tokens for exactly one grant: password, client credentials or refresh."""
        grant = request.WhichOneof("grant")
        # Failed logins are throttled per client address too.
        origin = LoginOrigin.from_call(context.peer(), context.invocation_metadata())
        if grant == "password":
            issued = await self._tokens.password_grant(
                request.password.tenant,
                request.password.username,
                request.password.password,
                request.scopes,
                origin=origin,
            )
        elif grant == "client_credentials":
            issued = await self._tokens.client_credentials_grant(
                request.client_credentials.client_id,
                request.client_credentials.client_secret,
                request.scopes,
                origin=origin,
            )
        elif grant == "refresh_token":
            issued = await self._tokens.refresh_grant(request.refresh_token.refresh_token)
        else:
            raise ValidationError(
                "Exactly one grant must be set: password, client_credentials or refresh_token.",
                reason=AuthErrorReason.GRANT_MISSING,
                domain=AUTH_ERROR_DOMAIN,
            )
        return _issue_response(issued)

    async def RevokeTokens(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.RevokeTokensRequest, context: _Context
    ) -> auth_service_pb2.RevokeTokensResponse:
        """Revoke a token by value, an access token by id, or every token of a subject."""
        caller = current_principal().subject
        why = request.reason[:_MAX_REASON_CHARS]
        target = request.WhichOneof("target")
        request_id = request.request_id
        if target == "token":
            revoke_time = await self._tokens.revoke_token(
                caller, request.token, why=why, request_id=request_id
            )
        elif target == "token_id":
            revoke_time = await self._tokens.revoke_token_id(
                caller, request.token_id, why=why, request_id=request_id
            )
        elif target == "subject":
            revoke_time = await self._tokens.revoke_subject(
                caller, request.subject, why=why, request_id=request_id
            )
        else:
            raise ValidationError(
                "Exactly one target must be set: token, token_id or subject.",
                reason=AuthErrorReason.REVOKE_TARGET_MISSING,
                domain=AUTH_ERROR_DOMAIN,
            )
        return auth_service_pb2.RevokeTokensResponse(revoke_time=_timestamp(revoke_time))

    async def IntrospectToken(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.IntrospectTokenRequest, context: _Context
    ) -> auth_service_pb2.IntrospectTokenResponse:
        """RFC 7662: the token's claims when active, else only `active = false`."""
        verified = await self._tokens.introspect(request.token)
        if verified is None:
            return auth_service_pb2.IntrospectTokenResponse(active=False)
        if isinstance(verified, ActiveRefreshToken):
            return auth_service_pb2.IntrospectTokenResponse(
                active=True,
                scopes=verified.scopes,
                username=verified.subject.rpartition("/")[2],
                token_type="refresh_token",  # noqa: S106 -- an RFC 7662 token type, not a secret
                expire_time=_timestamp(verified.expire_time),
                issue_time=_timestamp(verified.issue_time),
                subject=verified.subject,
                tenant=verified.tenant,
            )
        response = auth_service_pb2.IntrospectTokenResponse(
            active=True,
            scopes=verified.scopes,
            client_id=verified.client_id or "",
            username="" if verified.client_id else verified.subject.rpartition("/")[2],
            token_type="access_token",  # noqa: S106 -- an RFC 7662 token type, not a secret
            expire_time=_timestamp(verified.expire_time),
            issue_time=_timestamp(verified.issue_time),
            subject=verified.subject,
            audiences=verified.audiences,
            issuer=verified.issuer,
            token_id=verified.token_id,
            tenant=verified.tenant or "",
            roles=verified.roles,
        )
        if verified.not_before is not None:
            response.not_before_time.FromSeconds(int(verified.not_before))
        return response

    async def RotateSigningKey(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.RotateSigningKeyRequest, context: _Context
    ) -> auth_service_pb2.RotateSigningKeyResponse:
        """Make a new active key; the old one stays published until its tokens expire."""
        rotation = await self._tokens.rotate_signing_key(
            current_principal().subject, request.algorithm, request_id=request.request_id
        )
        return auth_service_pb2.RotateSigningKeyResponse(
            signing_key=_signing_key(rotation.active),
            retired_signing_key=_signing_key(rotation.retired),
        )

    # Decisions

    async def Check(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.CheckRequest, context: _Context
    ) -> auth_service_pb2.CheckResponse:
        """Whether the principal holds the permission in the tenant; a denial is no error."""
        allowed = self._decisions.check(_caller(), _question(request))
        return auth_service_pb2.CheckResponse(allowed=allowed)

    async def BatchCheck(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.BatchCheckRequest, context: _Context
    ) -> auth_service_pb2.BatchCheckResponse:
        """One decision per check, in request order."""
        decisions = self._decisions.check_many(
            _caller(), [_question(check) for check in request.requests]
        )
        return auth_service_pb2.BatchCheckResponse(
            responses=[auth_service_pb2.CheckResponse(allowed=allowed) for allowed in decisions]
        )

    # Tenants

    async def CreateTenant(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.CreateTenantRequest, context: _Context
    ) -> auth_service_pb2.CreateTenantResponse:
        """Create a tenant with its four default roles (platform admins)."""
        row = await self._admin.create_tenant(
            _caller(),
            request.tenant_id,
            display_name=request.tenant.display_name,
            request_id=request.request_id,
        )
        return auth_service_pb2.CreateTenantResponse(tenant=_tenant(row))

    async def GetTenant(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.GetTenantRequest, context: _Context
    ) -> auth_service_pb2.GetTenantResponse:
        """One tenant."""
        row = await self._admin.get_tenant(_caller(), request.name)
        return auth_service_pb2.GetTenantResponse(tenant=_tenant(row))

    async def ListTenants(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.ListTenantsRequest, context: _Context
    ) -> auth_service_pb2.ListTenantsResponse:
        """A page of tenants by name."""
        page: ListPage[TenantRow] = await self._admin.list_tenants(
            _caller(), requested_page_size=request.page_size, page_token=request.page_token
        )
        return auth_service_pb2.ListTenantsResponse(
            tenants=[_tenant(row) for row in page.items], next_page_token=page.next_page_token
        )

    async def DisableTenant(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.DisableTenantRequest, context: _Context
    ) -> auth_service_pb2.DisableTenantResponse:
        """Disable a tenant (platform admins)."""
        row = await self._admin.disable_tenant(_caller(), request.name)
        return auth_service_pb2.DisableTenantResponse(tenant=_tenant(row))

    # Users

    async def CreateUser(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.CreateUserRequest, context: _Context
    ) -> auth_service_pb2.CreateUserResponse:
        """Create a user with an initial password."""
        row = await self._admin.create_user(
            _caller(),
            request.parent,
            request.user_id,
            password=request.password,
            display_name=request.user.display_name,
            email=request.user.email,
            request_id=request.request_id,
        )
        return auth_service_pb2.CreateUserResponse(user=_user(row))

    async def GetUser(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.GetUserRequest, context: _Context
    ) -> auth_service_pb2.GetUserResponse:
        """One user."""
        row = await self._admin.get_user(_caller(), request.name)
        return auth_service_pb2.GetUserResponse(user=_user(row))

    async def ListUsers(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.ListUsersRequest, context: _Context
    ) -> auth_service_pb2.ListUsersResponse:
        """A page of a tenant's users by name."""
        page = await self._admin.list_users(
            _caller(),
            request.parent,
            requested_page_size=request.page_size,
            page_token=request.page_token,
        )
        return auth_service_pb2.ListUsersResponse(
            users=[_user(row) for row in page.items], next_page_token=page.next_page_token
        )

    async def DisableUser(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.DisableUserRequest, context: _Context
    ) -> auth_service_pb2.DisableUserResponse:
        """Disable a user."""
        row = await self._admin.disable_user(_caller(), request.name)
        return auth_service_pb2.DisableUserResponse(user=_user(row))

    async def SetUserPassword(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.SetUserPasswordRequest, context: _Context
    ) -> auth_service_pb2.SetUserPasswordResponse:
        """Replace a user's password."""
        row = await self._admin.set_user_password(
            _caller(), request.name, request.password, request_id=request.request_id
        )
        return auth_service_pb2.SetUserPasswordResponse(user=_user(row))

    # Service accounts

    async def CreateServiceAccount(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.CreateServiceAccountRequest, context: _Context
    ) -> auth_service_pb2.CreateServiceAccountResponse:
        """Create a service account; its client secret is returned this once (a retry with
        the same request_id answers the account with an empty secret)."""
        created = await self._admin.create_service_account(
            _caller(),
            request.parent,
            request.service_account_id,
            display_name=request.service_account.display_name,
            description=request.service_account.description,
            request_id=request.request_id,
        )
        return auth_service_pb2.CreateServiceAccountResponse(
            service_account=_service_account(created.account),
            client_secret=created.client_secret,
        )

    async def GetServiceAccount(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.GetServiceAccountRequest, context: _Context
    ) -> auth_service_pb2.GetServiceAccountResponse:
        """One service account, without its secret."""
        row = await self._admin.get_service_account(_caller(), request.name)
        return auth_service_pb2.GetServiceAccountResponse(service_account=_service_account(row))

    async def ListServiceAccounts(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.ListServiceAccountsRequest, context: _Context
    ) -> auth_service_pb2.ListServiceAccountsResponse:
        """A page of a tenant's service accounts by name."""
        page = await self._admin.list_service_accounts(
            _caller(),
            request.parent,
            requested_page_size=request.page_size,
            page_token=request.page_token,
        )
        return auth_service_pb2.ListServiceAccountsResponse(
            service_accounts=[_service_account(row) for row in page.items],
            next_page_token=page.next_page_token,
        )

    async def DisableServiceAccount(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.DisableServiceAccountRequest, context: _Context
    ) -> auth_service_pb2.DisableServiceAccountResponse:
        """Disable a service account."""
        row = await self._admin.disable_service_account(_caller(), request.name)
        return auth_service_pb2.DisableServiceAccountResponse(service_account=_service_account(row))

    # Roles

    async def AssignRole(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.AssignRoleRequest, context: _Context
    ) -> auth_service_pb2.AssignRoleResponse:
        """Give a principal a role."""
        assignment = await self._admin.assign_role(_caller(), request.principal, request.role)
        return auth_service_pb2.AssignRoleResponse(role_assignment=_role_assignment(assignment))

    async def UnassignRole(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.UnassignRoleRequest, context: _Context
    ) -> auth_service_pb2.UnassignRoleResponse:
        """Take a role from a principal."""
        await self._admin.unassign_role(_caller(), request.principal, request.role)
        return auth_service_pb2.UnassignRoleResponse()

    async def ListRoleAssignments(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.ListRoleAssignmentsRequest, context: _Context
    ) -> auth_service_pb2.ListRoleAssignmentsResponse:
        """A page of the role assignments of a tenant's principals."""
        page = await self._admin.list_role_assignments(
            _caller(),
            request.parent,
            principal=request.principal,
            role=request.role,
            requested_page_size=request.page_size,
            page_token=request.page_token,
        )
        return auth_service_pb2.ListRoleAssignmentsResponse(
            role_assignments=[_role_assignment(item) for item in page.items],
            next_page_token=page.next_page_token,
        )

    async def GrantRolePermission(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.GrantRolePermissionRequest, context: _Context
    ) -> auth_service_pb2.GrantRolePermissionResponse:
        """Grant a permission to a role."""
        grant = await self._admin.grant_role_permission(_caller(), request.role, request.permission)
        return auth_service_pb2.GrantRolePermissionResponse(role_permission=_role_permission(grant))

    async def RevokeRolePermission(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.RevokeRolePermissionRequest, context: _Context
    ) -> auth_service_pb2.RevokeRolePermissionResponse:
        """Revoke a permission from a role."""
        await self._admin.revoke_role_permission(_caller(), request.role, request.permission)
        return auth_service_pb2.RevokeRolePermissionResponse()

    async def ListRolePermissions(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.ListRolePermissionsRequest, context: _Context
    ) -> auth_service_pb2.ListRolePermissionsResponse:
        """A page of the permissions granted to a role."""
        page = await self._admin.list_role_permissions(
            _caller(),
            request.role,
            requested_page_size=request.page_size,
            page_token=request.page_token,
        )
        return auth_service_pb2.ListRolePermissionsResponse(
            role_permissions=[_role_permission(item) for item in page.items],
            next_page_token=page.next_page_token,
        )
