"""Composition root: Config -> Database -> stores -> services. No globals.

Everything a process needs is built here from one Config and handed down explicitly, so a test
can run several complete homeservers side by side in one process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from myelin.config import Config
from myelin.config_checks import parse_old_signing_keys
from myelin.core.room_versions import KNOWN_ROOM_VERSIONS
from myelin.core.x_matrix import authorization_header
from myelin.services.account_data import AccountDataService
from myelin.services.accounts import AccountService
from myelin.services.auth import AuthService
from myelin.services.cross_signing import CrossSigningService
from myelin.services.directory import DirectoryService
from myelin.services.e2e_keys import E2eKeyService, KeyChanges
from myelin.services.ephemeral import EphemeralStream
from myelin.services.federation.acl import RoomAcls
from myelin.services.federation.backfill import Backfiller
from myelin.services.federation.client import FederationClient
from myelin.services.federation.devices import DeviceListPublisher, RemoteDeviceLists
from myelin.services.federation.discovery import ServerResolver
from myelin.services.federation.edus import EduRelay
from myelin.services.federation.event_validation import EventValidator
from myelin.services.federation.invites import Invites
from myelin.services.federation.joins import Joins
from myelin.services.federation.keyring import Keyring
from myelin.services.federation.outbound import RoomDistributor
from myelin.services.federation.queries import RemoteQueries
from myelin.services.federation.receiver import TransactionReceiver
from myelin.services.federation.request_auth import FederationAuthenticator
from myelin.services.federation.room_data import RoomData
from myelin.services.federation.sender import FederationSender
from myelin.services.filtering import FilterService
from myelin.services.key_backup import KeyBackupService
from myelin.services.media.blobs import FileBlobStore
from myelin.services.media.remote import RemoteMediaFetcher
from myelin.services.media.repository import MediaRepository
from myelin.services.media.retention import MediaRetention
from myelin.services.media.thumbnails import ThumbnailService
from myelin.services.media.url_previews import UrlPreviewService, make_fetcher
from myelin.services.notifier import Notifier
from myelin.services.presence import PresenceService
from myelin.services.profiles import ProfileService
from myelin.services.push_delivery import PushDelivery
from myelin.services.push_rules import PushRuleService
from myelin.services.pushers import NotificationList, PusherService
from myelin.services.ratelimit import RateLimiter
from myelin.services.receipts import ReceiptService
from myelin.services.registration import RegistrationService
from myelin.services.relations import RelationService
from myelin.services.reports import ReportService
from myelin.services.rooms.builder import EventBuilder
from myelin.services.rooms.creation import RoomCreator
from myelin.services.rooms.history import HistoryService
from myelin.services.rooms.incoming import IncomingEvents
from myelin.services.rooms.membership import MembershipService
from myelin.services.rooms.membership_cache import JoinedMembers, UserMemberships
from myelin.services.rooms.redactions import RedactionService
from myelin.services.rooms.timeline import Timeline
from myelin.services.rooms.upgrade import RoomUpgrader
from myelin.services.rooms.visibility import Visibility
from myelin.services.search import SearchService
from myelin.services.spaces import SpaceService
from myelin.services.sync import SyncService
from myelin.services.to_device import DIRECT_TO_DEVICE, ToDeviceService
from myelin.services.typing import TypingService
from myelin.services.uia import UiaService
from myelin.services.unread import UnreadCounter
from myelin.services.user_directory import UserDirectoryService
from myelin.services.voip import VoipService
from myelin.signing_key import SigningKey, load_or_create
from myelin.storage.database import Database, connect_database
from myelin.storage.migrations import migrate
from myelin.storage.planner_statistics import PlannerStatistics
from myelin.storage.sequences import StreamPositions
from myelin.storage.stores.account_data import AccountDataStore
from myelin.storage.stores.aliases import AliasStore
from myelin.storage.stores.devices import DeviceStore
from myelin.storage.stores.directory import DirectoryStore
from myelin.storage.stores.e2e_keys import E2eKeyStore
from myelin.storage.stores.events import EventStore
from myelin.storage.stores.federation_outbox import FederationOutboxStore
from myelin.storage.stores.filters import FilterStore
from myelin.storage.stores.key_backup import KeyBackupStore
from myelin.storage.stores.media import MediaStore
from myelin.storage.stores.notifications import NotificationStore
from myelin.storage.stores.profiles import ProfileStore
from myelin.storage.stores.push_rules import PushRuleStore
from myelin.storage.stores.pushers import PusherStore
from myelin.storage.stores.receipts import ReceiptStore
from myelin.storage.stores.relations import RelationStore
from myelin.storage.stores.reports import ReportStore
from myelin.storage.stores.search import SearchStore
from myelin.storage.stores.server_keys import ServerKeyStore
from myelin.storage.stores.server_meta import ServerMetaStore
from myelin.storage.stores.state import StateStore
from myelin.storage.stores.to_device import ToDeviceStore
from myelin.storage.stores.tokens import TokenStore
from myelin.storage.stores.users import UserStore

log = logging.getLogger("myelin")

SIGNING_KEY_META = "signing_key_id"


@dataclass
class Services:
    """The services an edge may call; handlers reach them as ``request.services``."""

    config: Config
    db: Database
    signing_key: SigningKey
    rate_limiter: RateLimiter
    auth: AuthService
    registration: RegistrationService
    accounts: AccountService
    filters: FilterService
    notifier: Notifier
    event_store: EventStore
    state_store: StateStore
    timeline: Timeline
    room_creator: RoomCreator
    membership: MembershipService
    sync: SyncService
    account_data: AccountDataService
    typing: TypingService
    presence: PresenceService
    receipts: ReceiptService
    push_rules: PushRuleService
    history: HistoryService
    directory: DirectoryService
    visibility: Visibility
    redactions: RedactionService
    upgrader: RoomUpgrader
    profiles: ProfileService
    user_directory: UserDirectoryService
    reports: ReportService
    voip: VoipService
    spaces: SpaceService
    pushers: PusherService
    notifications: NotificationList
    push_delivery: PushDelivery
    relations: RelationService
    search: SearchService
    to_device: ToDeviceService
    key_backup: KeyBackupService
    e2e_keys: E2eKeyService
    cross_signing: CrossSigningService
    media: MediaRepository
    thumbnails: ThumbnailService
    url_previews: UrlPreviewService
    media_retention: MediaRetention
    planner_statistics: PlannerStatistics
    federation_client: FederationClient
    keyring: Keyring
    federation_auth: FederationAuthenticator
    federation_sender: FederationSender
    federation_receiver: TransactionReceiver
    edu_relay: EduRelay
    room_distributor: RoomDistributor
    room_acls: RoomAcls
    room_data: RoomData
    joins: Joins
    invites: Invites
    incoming: IncomingEvents


async def connect(config: Config) -> Database:
    db_config = config.database
    if db_config.engine == "sqlite":
        return await connect_database(engine="sqlite",
                                      sqlite_path=config.resolve(db_config.sqlite_path))
    return await connect_database(engine="postgresql", postgres_dsn=db_config.postgres_dsn,
                                  pool_size=db_config.pool_size)


async def open_database(config: Config) -> Database:
    """Connect and bring the schema up to date (migrations are applied at every start)."""
    db = await connect(config)
    try:
        applied = await migrate(db)
    except BaseException:
        await db.close()
        raise
    if applied:
        log.info("applied database migrations %s", applied)
    return db


async def load_signing_key(config: Config, db: Database) -> SigningKey:
    """Load the key file, creating it only if this database never had a key."""
    meta = ServerMetaStore(db)
    known_key_id = await meta.get(SIGNING_KEY_META)
    key, created = load_or_create(config.resolve(config.signing_key_path),
                                  may_create=known_key_id is None)
    if created:
        log.info("generated signing key %s at %s", key.key_id,
                 config.resolve(config.signing_key_path))
    if known_key_id != key.key_id:
        if known_key_id is not None:
            log.warning("signing key changed from %s to %s", known_key_id, key.key_id)
        await meta.upsert(SIGNING_KEY_META, key.key_id)
    return key


async def build_services(config: Config) -> Services:
    db = await open_database(config)
    try:
        signing_key = await load_signing_key(config, db)
    except BaseException:
        await db.close()
        raise
    devices = DeviceStore(db)
    auth = AuthService(
        UserStore(db), devices, TokenStore(db), server_name=config.server_name,
        bcrypt_rounds=config.passwords.bcrypt_rounds,
        refreshable_lifetime_ms=config.sessions.refreshable_access_token_lifetime_s * 1000,
    )
    uia = UiaService()
    rate_limiter = RateLimiter(config.rate_limits)
    notifier = Notifier()
    event_store, state_store, aliases = EventStore(db), StateStore(db), AliasStore(db)
    timeline = Timeline(
        db, event_store, state_store, EventBuilder(config.server_name, signing_key), notifier,
        # One stream for events and account data: a /sync token covers both.
        stream=await StreamPositions.load(db, "events", "stream_ordering",
                                          ("account_data", "stream_id"),
                                          ("receipts", "stream_id"),
                                          # Delivered to-device messages are deleted; this
                                          # keeps their highest position.
                                          ("to_device_stream", "stream_id"),
                                          # Device-list changes keep only each user's latest.
                                          ("device_list_changes", "stream_id"),
                                          ("device_list_private_changes", "stream_id")),
        state_groups=await StreamPositions.load(db, "state_groups", "group_id"),
    )
    joined_members = JoinedMembers(state_store, timeline.stream, timeline.membership_changes,
                                   config.server_name)
    user_memberships = UserMemberships(state_store, timeline.stream,
                                       timeline.membership_changes)
    visibility = Visibility(state_store, timeline.get_pdus)
    relations = RelationService(RelationStore(db), event_store, state_store, visibility,
                                timeline.get_pdus)
    history = HistoryService(event_store, state_store, timeline, visibility,
                             bundler_for=relations.bundler_for)
    profile_store = ProfileStore(db)
    profiles = ProfileService(profile_store, timeline, state_store, config.server_name)
    account_data = AccountDataService(AccountDataStore(db), timeline.stream, notifier)
    ephemeral = EphemeralStream()
    typing = TypingService(state_store, notifier, ephemeral)
    presence = PresenceService(config.presence, user_memberships, notifier, ephemeral,
                               config.server_name)
    push_rules = PushRuleService(
        PushRuleStore(db),  # changes reach clients as m.push_rules account data
        on_change=lambda user_id, content: account_data.put_managed(
            user_id, None, "m.push_rules", content),
    )
    receipts = ReceiptService(ReceiptStore(db), state_store, timeline, account_data,
                              timeline.stream, notifier)
    directory = DirectoryService(timeline, state_store, aliases, DirectoryStore(db),
                                 config.server_name)
    federation_client, keyring = _federation(config, db, signing_key)
    validator = EventValidator(keyring)
    incoming = IncomingEvents(timeline, event_store, state_store)
    federation_sender = FederationSender(FederationOutboxStore(db), federation_client,
                                         config.server_name)
    distributor = RoomDistributor(federation_sender, joined_members, config.server_name)
    if config.federation.enabled:
        timeline.on_persisted.append(distributor.on_persisted)
    invites = Invites(config.server_name, signing_key, federation_client, keyring, validator,
                      timeline, event_store, state_store)
    joins = Joins(config.server_name, signing_key, federation_client, validator, timeline,
                  incoming, event_store, state_store, distributor.distribute, invites)
    room_acls = RoomAcls(timeline)
    spaces = SpaceService(timeline, state_store, directory, DirectoryStore(db))
    membership = MembershipService(timeline, state_store, aliases, config.server_name,
                                   profiles.member_content,
                                   joins if config.federation.enabled else None,
                                   user_memberships=user_memberships)
    joins.authoriser = membership.restricted_join_authoriser
    if config.federation.enabled:
        remote_queries = RemoteQueries(federation_client)
        profiles.remote = remote_queries
        directory.remote = remote_queries
        spaces.remote = remote_queries.hierarchy
    receiver = TransactionReceiver(config.server_name, federation_client, validator, incoming,
                                   timeline, event_store, state_store, room_acls.allows)
    # Typing, receipts and presence between servers: inbound EDU handlers, and listeners on
    # the local services that queue outbound EDUs.
    edu_relay = EduRelay(config.server_name, federation_sender, state_store, room_acls.allows,
                         typing, receipts, presence)
    receiver.edu_handlers.update(edu_relay.handlers())
    if config.federation.enabled:
        typing.on_change.append(edu_relay.on_typing)
        receipts.on_receipt.append(edu_relay.on_receipt)
        presence.on_change.append(edu_relay.on_presence)
        timeline.on_persisted.append(edu_relay.on_persisted)
    if config.federation.enabled:
        history.backfill = Backfiller(config.server_name, db, federation_client, validator,
                                      incoming, timeline, event_store, state_store,
                                      receiver).backfill
    room_creator = RoomCreator(timeline, aliases, config.server_name,
                               KNOWN_ROOM_VERSIONS[config.rooms.default_room_version],
                               profiles.member_content)
    if config.federation.enabled:
        room_creator.countersign_invite = joins.countersign_invite
    pusher_store, notification_store = PusherStore(db), NotificationStore(db)
    push_delivery = PushDelivery(config.push, config.server_name, timeline, joined_members,
                                 push_rules, pusher_store, notification_store, event_store)
    timeline.on_persisted.append(push_delivery.on_persisted)
    to_device = ToDeviceService(ToDeviceStore(db), devices, event_store, timeline.stream,
                                notifier, config.server_name)
    e2e_store = E2eKeyStore(db)
    key_changes = KeyChanges(e2e_store, state_store, timeline.stream, notifier)
    accounts = AccountService(auth, uia, devices, config.server_name)
    e2e_keys = E2eKeyService(e2e_store, key_changes, config.server_name,
                             membership_changes=timeline.membership_changes)
    auth.on_devices_removed.append(e2e_keys.devices_removed)
    cross_signing = CrossSigningService(e2e_store, key_changes, accounts)
    if config.federation.enabled:
        # End-to-end encryption with other servers' users: device lists and cross-signing
        # keys published and cached, remote key queries/claims, to-device EDUs.
        device_lists = DeviceListPublisher(e2e_store, federation_sender, config.server_name)
        remote_devices = RemoteDeviceLists(e2e_store, key_changes, federation_client,
                                           config.server_name)
        e2e_keys.publisher = cross_signing.publisher = device_lists
        e2e_keys.remote = remote_devices
        to_device.federation = federation_sender
        receiver.edu_handlers.update(remote_devices.handlers())
        receiver.edu_handlers[DIRECT_TO_DEVICE] = to_device.on_direct_to_device
        timeline.on_persisted.append(remote_devices.on_persisted)
    media_store = MediaStore(db)
    blobs = FileBlobStore(config.resolve(config.media_store_path))
    thumbnails = ThumbnailService(media_store, blobs, config.media)
    media = MediaRepository(media_store, blobs, config.media, config.server_name,
                            on_stored=thumbnails.make_configured)
    if config.federation.enabled:
        media.remote = RemoteMediaFetcher(federation_client, config.media.max_upload_bytes)
    return Services(
        config=config, db=db, signing_key=signing_key, rate_limiter=rate_limiter, auth=auth,
        registration=RegistrationService(auth, uia, config.registration, config.server_name,
                                         rate_limiter),
        accounts=accounts,
        filters=FilterService(FilterStore(db)),
        notifier=notifier,
        event_store=event_store,
        state_store=state_store,
        timeline=timeline,
        room_creator=room_creator,
        membership=membership,
        sync=SyncService(event_store, state_store, timeline, visibility, notifier,
                         timeline.stream, account_data, typing, receipts, push_rules,
                         UnreadCounter(event_store, joined_members, timeline, receipts,
                                       push_rules, notification_store,
                                       push_delivery.evaluated_upto),
                         presence, ephemeral, to_device, e2e_keys, user_memberships,
                         bundler_for=relations.bundler_for),
        presence=presence,
        account_data=account_data,
        typing=typing,
        receipts=receipts,
        push_rules=push_rules,
        history=history,
        directory=directory,
        visibility=visibility,
        redactions=RedactionService(timeline, event_store),
        upgrader=RoomUpgrader(timeline, room_creator, aliases, directory),
        profiles=profiles,
        user_directory=UserDirectoryService(profile_store, state_store, timeline.stream,
                                            config.user_directory, config.server_name),
        reports=ReportService(ReportStore(db), event_store, state_store, UserStore(db),
                              visibility, config.server_name),
        voip=VoipService(config.voip),
        spaces=spaces,
        pushers=PusherService(pusher_store, timeline.stream),
        notifications=NotificationList(notification_store, event_store, timeline.get_pdus,
                                       receipts),
        push_delivery=push_delivery,
        relations=relations,
        search=SearchService(SearchStore(db), event_store, state_store, timeline, visibility,
                             history, bundler_for=relations.bundler_for),
        to_device=to_device,
        key_backup=KeyBackupService(KeyBackupStore(db)),
        e2e_keys=e2e_keys,
        cross_signing=cross_signing,
        media=media,
        thumbnails=thumbnails,
        url_previews=UrlPreviewService(media_store, media, config.url_preview,
                                       make_fetcher(config.url_preview),
                                       max_image_pixels=config.media.max_image_pixels),
        media_retention=MediaRetention(media_store, blobs, config.media, config.server_name),
        planner_statistics=PlannerStatistics(db),
        federation_client=federation_client,
        keyring=keyring,
        federation_auth=FederationAuthenticator(keyring, config.server_name),
        federation_sender=federation_sender,
        federation_receiver=receiver,
        edu_relay=edu_relay,
        room_distributor=distributor,
        room_acls=room_acls,
        room_data=RoomData(config.server_name, timeline, incoming, event_store, state_store,
                           visibility),
        joins=joins,
        invites=invites,
        incoming=incoming,
    )


def _federation(config: Config, db: Database,
                signing_key: SigningKey) -> tuple[FederationClient, Keyring]:
    """The client that talks to other servers and the keyring that checks their signatures."""
    federation = config.federation
    resolver = ServerResolver(verify_tls=federation.verify_certificates,
                              allow_private_destinations=federation.allow_private_destinations)

    def sign(destination: str, method: str, uri: str, content: object) -> str:
        return authorization_header(signing_key, config.server_name, destination, method, uri,
                                    content)

    client = FederationClient(config.server_name, sign, resolver,
                              verify_tls=federation.verify_certificates,
                              allow_private_destinations=federation.allow_private_destinations)

    async def fetch(server_name: str, method: str, path: str, body: object) -> object:
        return await client.request(server_name, method, path, json=body, signed=False)

    notaries = [(entry.split()[0], dict(k.split("=", 1) for k in entry.split()[1:]))
                for entry in federation.trusted_key_servers]
    keyring = Keyring(ServerKeyStore(db), signing_key, config.server_name, fetch, notaries,
                      old_verify_keys=parse_old_signing_keys(federation.old_signing_keys),
                      key_validity_ms=federation.signing_key_validity_s * 1000)
    return client, keyring
