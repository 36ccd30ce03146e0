/** Reason codes (MQTT 5.0 §2.4) and the 3.1.1 CONNACK return codes (§3.2.2.3) they map to. */
export const RC = {
  Success: 0x00,
  GrantedQos1: 0x01,
  GrantedQos2: 0x02,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  PayloadFormatInvalid: 0x99,
  KeepAliveTimeout: 0x8d,
  NoSubscriptionExisted: 0x11,
  NoMatchingSubscribers: 0x10,
  SharedSubscriptionsNotSupported: 0x9e,
  WildcardSubscriptionsNotSupported: 0xa2,
} as const;

/** 3.1.1 CONNACK return codes [MQTT-3.2.2-4..6]. */
export const V4 = { Accepted: 0, UnacceptableProtocolVersion: 1, IdentifierRejected: 2, ServerUnavailable: 3, BadUserNameOrPassword: 4, NotAuthorized: 5 } as const;

/** The 3.1.1 CONNACK code closest to a 5.0 reason code. */
export function connackV4(rc: number): number {
  switch (rc) {
    case RC.Success:
      return V4.Accepted;
    case RC.UnsupportedProtocolVersion:
      return V4.UnacceptableProtocolVersion;
    case RC.ClientIdentifierNotValid:
      return V4.IdentifierRejected;
    case RC.BadUserNameOrPassword:
      return V4.BadUserNameOrPassword;
    case RC.NotAuthorized:
      return V4.NotAuthorized;
    default:
      return V4.ServerUnavailable;
  }
}

/** A platform status (HTTP-like) as a PUBACK/PUBREC/SUBACK reason code. */
export function reasonFromStatus(status: number): number {
  if (status === 401 || status === 403 || status === 404) return RC.NotAuthorized; // a foreign channel looks missing; both are "not authorized" here
  if (status === 400) return RC.PayloadFormatInvalid;
  if (status === 413) return RC.PacketTooLarge;
  if (status === 415) return RC.PayloadFormatInvalid;
  if (status === 429) return RC.QuotaExceeded;
  if (status === 503) return RC.ServerUnavailable;
  return RC.UnspecifiedError;
}
