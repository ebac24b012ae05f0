"""A PayClient for the emulator's fake merchant (keys in wxsite/emulator/pay_keys/)."""

import os

from wxsite.wechat import pay, protocol

KEYS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "wxsite",
    "emulator",
    "pay_keys",
)


def read(name):
    with open(os.path.join(KEYS, name), "rb") as f:
        return f.read()


def emulator_pay_client(base_url, **options):
    return pay.PayClient(
        protocol.EMULATOR_MCHID,
        protocol.EMULATOR_APPID,
        pay.load_private_key(read("merchant.key.pem")),
        protocol.EMULATOR_MERCHANT_SERIAL,
        protocol.EMULATOR_APIV3_KEY,
        {protocol.EMULATOR_PLATFORM_KEY_ID: pay.load_public_key(read("platform.pub.pem"))},
        protocol.EMULATOR_PLATFORM_KEY_ID,
        api_base=base_url,
        **options,
    )
